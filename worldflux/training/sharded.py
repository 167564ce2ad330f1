"""What sharded (FSDP) training needs beyond the strategy itself, importable without Lightning.

Phase training runs each loss inside a forward of the root unit and computes global gradient
norms (:class:`ShardedPhases`); acting, evaluation, videos and export see whole parameters
(:func:`full_parameters`, :func:`whole_model`). Without sharding each helper is a no-op.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager as ContextManager
from typing import Any

import torch
from torch import nn


class ShardedPhases:
    """What phase training needs from FSDP (``WorldModel.sharding``).

    Args:
        root: the root ``FullyShardedDataParallel`` unit.
        module: the wrapped LightningModule.
        sharding: the FSDP sharding strategy's name (``NO_SHARD`` keeps whole gradients).
    """

    def __init__(self, root: nn.Module, module: nn.Module, sharding: str) -> None:
        self.root, self.module = root, module
        self.sharded_grads = sharding != "NO_SHARD"
        self.group = getattr(root, "process_group", None)
        # EMA targets read and write whole tensors, so they need the gathered parameters
        from worldflux.core.training import PhaseTraining

        self.gather_after_phase = type(module).after_phase is not PhaseTraining.after_phase

    def run_loss(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` inside a forward of the root unit, so its parameters are gathered."""
        module = self.module
        module.forward = lambda: fn(*args)  # the root's forward calls the module's
        try:
            return self.root()
        finally:
            del module.forward

    def run_after_phase(self, fn: Callable[[str], None], name: str) -> None:
        """``fn(name)`` with every parameter whole (written back to the shards afterwards)."""
        if not self.gather_after_phase:
            fn(name)
            return
        from torch.distributed.fsdp import FullyShardedDataParallel

        with torch.no_grad(), FullyShardedDataParallel.summon_full_params(self.root):
            fn(name)

    def grad_norm(self, params: Sequence[torch.Tensor]) -> torch.Tensor:
        """The 2-norm of the whole gradient of ``params`` (each rank holds a shard of it)."""
        if not self.sharded_grads:
            from worldflux.core.training import _grad_norm

            return _grad_norm(params)
        grads = [p.grad for p in params if p.grad is not None]
        return sharded_grad_norm(grads, self.group, self.module.device)


def wrap_policy(classes: frozenset[type[nn.Module]]) -> Any:
    """FSDP's wrap policy: one unit per instance of the family's unit classes (``None``: none)."""
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    return ModuleWrapPolicy(set(classes)) if classes else None


def full_state_dict_context(
    module: nn.Module, world_size: int = 1, rank0_only: bool = True, offload: bool = False
) -> ContextManager[Any]:
    """FSDP's full-state-dict context (gathered on rank 0 only with ``rank0_only``)."""
    from torch.distributed.fsdp import FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.api import FullOptimStateDictConfig

    return FSDP.state_dict_type(
        module=module,
        state_dict_type=StateDictType.FULL_STATE_DICT,
        state_dict_config=FullStateDictConfig(offload_to_cpu=offload, rank0_only=rank0_only),
        optim_state_dict_config=FullOptimStateDictConfig(
            offload_to_cpu=offload, rank0_only=rank0_only
        ),
    )


def whole_model(model: Any) -> Any:
    """``model`` itself, or under FSDP a plain (unsharded, full-precision) copy on rank 0.

    Every rank must call it under FSDP: the whole state dict is gathered onto rank 0 (a
    collective) and loaded into a copy built there; the other ranks get ``None``. Rank 0 alone can then evaluate, render or save the copy, with no collective that
    the other ranks would have to join (FSDP's mixed precision gathers inside every unit's
    forward, even with the parameters summoned).
    """
    shard = getattr(model, "sharding", None)
    if shard is None:
        return model
    import torch.distributed as dist

    with full_state_dict_context(shard.root, rank0_only=True):
        state = shard.root.state_dict()
    if dist.is_initialized() and dist.get_rank() != 0:
        return None
    # built where the model runs (not on ``meta``): non-persistent buffers need their values
    with torch.device(model.device):
        plain = type(model)(model.hparams["config"])
    plain.load_state_dict(state, strict=True)
    plain.model_id = getattr(model, "model_id", None)
    return plain.train(model.training)


def full_parameters(model: Any) -> ContextManager[None]:
    """A context in which ``model``'s methods see whole parameters (a collective under FSDP).

    Acting, evaluation and videos call methods other than ``forward``; under FSDP every rank
    must enter this context together (it gathers the shards). Without sharding it does nothing.
    """
    shard = getattr(model, "sharding", None)
    if shard is None:
        return contextlib.nullcontext()
    from torch.distributed.fsdp import FullyShardedDataParallel

    stack = contextlib.ExitStack()
    stack.enter_context(FullyShardedDataParallel.summon_full_params(shard.root, writeback=False))
    dtype = getattr(getattr(shard.root, "mixed_precision", None), "param_dtype", None)
    if dtype is not None:
        # the wrap units still compute in FSDP's low precision; the rest must cast to match
        stack.enter_context(torch.autocast(shard.module.device.type, dtype=dtype))
    return stack


def sharded_grad_norm(
    grads: Sequence[torch.Tensor], group: Any = None, device: Any = None
) -> torch.Tensor:
    """The 2-norm of a gradient each rank of ``group`` holds one shard of (``None``: all ranks)."""
    import torch.distributed as dist

    squared = torch.zeros((), dtype=torch.float32, device=device)
    if grads:
        squared = squared + torch.stack(torch._foreach_norm(list(grads))).float().pow(2).sum()
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(squared, group=group)
    return squared.sqrt()
