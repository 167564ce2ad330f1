"""Sharded training (``trainer=fsdp``): Lightning's FSDP strategy with the family's wrap units.

Each family names its FSDP wrap units (``WorldModel.fsdp_wrap_units``: class names of the blocks
that become one shard unit each, e.g. transformer blocks, MLP heads); ``trainer.fsdp.wrap``
overrides them. The same units are the activation-checkpointing units when
``trainer.fsdp.activation_checkpointing`` is true. Mixed precision is ``trainer.precision``
(``bf16-mixed``, ``16-mixed``, ``bf16-true``, ``32-true``), which Lightning turns into FSDP's
``MixedPrecision``.

A wrap unit must be entered through its ``forward`` only: FSDP gathers a unit's parameters in
its forward hook, so a unit whose other methods are called directly would see its local shard.

Lightning refuses the *string* ``strategy=fsdp`` without a GPU; :class:`WorldModelFSDP` is a
subclass, which Lightning lets run on CPU over gloo (the 2-process CPU tests use this).
``build_trainer`` builds it when ``trainer.strategy`` is ``fsdp``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.precision import FSDPPrecision
from lightning.pytorch.strategies import FSDPStrategy
from torch import nn

from worldflux.errors import ConfigError, suggest
from worldflux.training.sharded import ShardedPhases, full_state_dict_context, wrap_policy

#: Options of the ``trainer.fsdp`` node and their defaults.
FSDP_OPTIONS: dict[str, Any] = {
    "sharding": "full",  # full (ZeRO-3) | grad_op (ZeRO-2) | hybrid (full within a node) | none
    "state_dict": "full",  # checkpoint format: full (one file) | sharded (a directory per save)
    "wrap": "auto",  # auto: the family's fsdp_wrap_units; or a list of module class names
    "activation_checkpointing": False,  # recompute the wrap units' activations in backward
    "cpu_offload": False,  # keep parameters and gradients in host memory between uses
}
#: Key of the per-rank optimiser states in a full FSDP checkpoint's ``optimizer_states``.
RANK_STATES = "worldflux_rank_states"
SHARDING = {"full": "FULL_SHARD", "grad_op": "SHARD_GRAD_OP", "hybrid": "HYBRID_SHARD",
            "none": "NO_SHARD"}  # fmt: skip
STATE_DICT = ("full", "sharded")


def fsdp_options(node: Mapping[str, Any] | None) -> dict[str, Any]:
    """The validated ``trainer.fsdp`` options with their defaults filled in.

    Raises:
        ConfigError: an unknown option or a bad value, naming ``trainer.fsdp.<option>``.
    """
    options = dict(FSDP_OPTIONS)
    for key, value in (node or {}).items():
        if key not in FSDP_OPTIONS:
            raise ConfigError(
                f"unknown option trainer.fsdp.{key}.{suggest(key, list(FSDP_OPTIONS))}"
            )
        options[key] = value
    if options["sharding"] not in SHARDING:
        raise ConfigError(
            f"trainer.fsdp.sharding must be one of {list(SHARDING)}, got {options['sharding']!r}"
        )
    if options["state_dict"] not in STATE_DICT:
        raise ConfigError(
            f"trainer.fsdp.state_dict must be one of {list(STATE_DICT)}, "
            f"got {options['state_dict']!r}"
        )
    wrap = options["wrap"]
    if wrap != "auto" and not (
        isinstance(wrap, (list, tuple)) and all(isinstance(w, str) and w for w in wrap)
    ):
        raise ConfigError(
            f"trainer.fsdp.wrap must be 'auto' or a list of module class names, got {wrap!r}"
        )
    for flag in ("activation_checkpointing", "cpu_offload"):
        if not isinstance(options[flag], bool):
            raise ConfigError(f"trainer.fsdp.{flag} must be true or false, got {options[flag]!r}")
    return options


def wrap_classes(model: nn.Module, names: Any = "auto") -> set[type[nn.Module]]:
    """The module classes of ``model`` named as wrap units (``auto``: ``model.fsdp_wrap_units``).

    A family's declared units that the chosen components do not contain are skipped (a preset
    may swap a block out); names given in ``trainer.fsdp.wrap`` must each match.

    Raises:
        ConfigError: a ``trainer.fsdp.wrap`` name that matches no module of ``model``, listing
            the closest class names the model has.
    """
    declared = names == "auto"
    if declared:
        names = tuple(getattr(model, "fsdp_wrap_units", ()))
    present = {type(m).__name__: type(m) for m in model.modules() if m is not model}
    classes = set()
    for name in names:
        if name in present:
            classes.add(present[name])
        elif not declared:
            raise ConfigError(
                f"trainer.fsdp.wrap names {name!r}, which is not a module class of "
                f"{type(model).__name__}.{suggest(name, sorted(present))}"
            )
    return classes


def build_fsdp(options: Mapping[str, Any], model: nn.Module) -> Any:
    """A :class:`WorldModelFSDP` strategy for ``model`` from validated ``trainer.fsdp`` options."""
    classes = wrap_classes(model, options["wrap"])
    if options["activation_checkpointing"] and not classes:
        raise ConfigError(
            f"trainer.fsdp.activation_checkpointing=true recomputes the wrap units, and "
            f"{type(model).__name__} has none (its fsdp_wrap_units: "
            f"{list(getattr(model, 'fsdp_wrap_units', ()))}); name some in trainer.fsdp.wrap"
        )
    return WorldModelFSDP(
        wrap=classes,
        sharding_strategy=SHARDING[options["sharding"]],
        state_dict_type=options["state_dict"],
        activation_checkpointing_policy=classes if options["activation_checkpointing"] else None,
        cpu_offload=options["cpu_offload"],
    )


class WorldModelFSDP(FSDPStrategy):
    """Lightning's ``FSDPStrategy`` wrapping the given module classes, on GPU or CPU (gloo).

    Lightning runs a whole ``training_step`` inside one forward of the root FSDP unit; the phase
    training of worldflux steps an optimiser after each phase's backward, which reshards the root,
    so each phase's loss runs in a forward of its own instead (:class:`ShardedPhases`).

    Args:
        wrap: the module classes that become one FSDP unit each (the rest joins the root unit).
        **kwargs: ``FSDPStrategy`` arguments (sharding, state-dict type, checkpointing, ...).
    """

    def __init__(self, wrap: set[type[nn.Module]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wrap_classes = frozenset(wrap)
        self.wrap_units = tuple(sorted(c.__name__ for c in wrap))

    @property
    def precision_plugin(self) -> Any:
        return FSDPStrategy.precision_plugin.fget(self)  # type: ignore[attr-defined]

    @precision_plugin.setter
    def precision_plugin(self, plugin: Any) -> None:
        if type(plugin) is FSDPPrecision:
            plugin = _TicketPrecision(plugin.precision, plugin.scaler)
        FSDPStrategy.precision_plugin.fset(self, plugin)  # type: ignore[attr-defined]

    @property
    def mixed_precision_config(self) -> Any:
        """Lightning's ``MixedPrecision`` for ``trainer.precision``, with buffers kept in fp32.

        Buffers hold running statistics (return percentiles, EMA scales) that the families
        update in place with fp32 values; casting them to bf16 breaks those updates.
        """
        config = super().mixed_precision_config
        if config is None or config.buffer_dtype is None:
            return config
        return dataclasses.replace(config, buffer_dtype=None)

    def _setup_model(self, model: nn.Module) -> nn.Module:
        from lightning.fabric.strategies.fsdp import _setup_activation_checkpointing
        from torch.distributed.fsdp import FullyShardedDataParallel

        for param in model.parameters():
            # FSDP flattens parameters; weight-decay grouping needs their true rank
            param.unsharded_dim = param.dim()  # type: ignore[attr-defined]
        self.kwargs["auto_wrap_policy"] = wrap_policy(self.wrap_classes)
        if self.root_device.type != "cpu":
            wrapped = super()._setup_model(model)
        else:
            # Lightning passes device_id=None on CPU, which torch's FSDP reads as "find an
            # accelerator"; naming the CPU device selects its CPU path (gloo collectives).
            wrapped = FullyShardedDataParallel(
                module=model,
                cpu_offload=self.cpu_offload,
                mixed_precision=self.mixed_precision_config,
                sharding_strategy=self.sharding_strategy,
                device_id=torch.device("cpu"),
                **self.kwargs,
            )
            _setup_activation_checkpointing(wrapped, self._activation_checkpointing_kwargs)
        model.sharding = ShardedPhases(wrapped, model, self.sharding_strategy.name)
        return wrapped

    # -------------------------------------------------------------- checkpoints
    # torch's FSDP frees the gathered tensors that ``offload_to_cpu`` "copied" to the CPU when
    # they already were there, and the state dict then reads freed memory (a segfault on the
    # ranks other than 0): offload only from an accelerator.
    def lightning_module_state_dict(self) -> dict[str, Any]:
        if self._state_dict_type == "sharded":
            return super().lightning_module_state_dict()
        assert self.model is not None
        with full_state_dict_context(self.model, offload=self.root_device.type != "cpu"):
            return self.model.state_dict()

    def optimizer_state(self, optimizer: Any) -> dict[str, Any]:
        """This rank's optimiser state (sharded), gathered onto rank 0 for a full checkpoint.

        FSDP's own optimiser-state API needs every trainable parameter of a flat parameter in the
        optimiser, while the phases give each part of the model its own optimiser; the states are
        therefore saved per rank, and a resume needs the same number of ranks.
        """
        import torch.distributed as dist

        local = getattr(optimizer, "_optimizer", optimizer).state_dict()
        if self._state_dict_type == "sharded":
            return local  # each rank writes its own file next to the shards
        gathered: list[Any] | None = [None] * self.world_size if self.global_rank == 0 else None
        dist.gather_object(local, gathered, dst=0)
        return {RANK_STATES: gathered}

    def save_checkpoint(
        self, checkpoint: dict[str, Any], filepath: Any, storage_options: Any | None = None
    ) -> None:
        if self._state_dict_type != "sharded":
            return super().save_checkpoint(checkpoint, filepath, storage_options)
        local = checkpoint.pop("optimizer_states", [])
        super().save_checkpoint(checkpoint, filepath, storage_options)
        path = Path(self.broadcast(filepath))
        rank_file = path / f"optimizer-rank{self.global_rank}.pt"
        torch.save({"world_size": self.world_size, "states": local}, rank_file)
        self.barrier("worldflux_sharded_save")  # the checkpoint is complete on every rank

    def load_checkpoint(self, checkpoint_path: Any, weights_only: bool | None = None) -> Any:
        from lightning.fabric.strategies.fsdp import (
            _distributed_checkpoint_load,
            _get_sharded_state_dict_context,
        )
        from lightning.fabric.utilities.load import _lazy_load, _materialize_tensors

        from worldflux.training.checkpoint import SHARDED_METADATA

        path = Path(self.broadcast(checkpoint_path))
        assert self.model is not None and self.lightning_module is not None
        strict = self.lightning_module.strict_loading
        fitting = self.lightning_module.trainer.state.fn == "fit"
        if path.is_dir():
            with _get_sharded_state_dict_context(self.model):
                state = {"model": self.model.state_dict()}
                _distributed_checkpoint_load(state, path)
                self.model.load_state_dict(state["model"], strict=strict)
            checkpoint = torch.load(path / SHARDED_METADATA, weights_only=weights_only)
            if fitting and self.optimizers:
                saved = torch.load(path / f"optimizer-rank{self.global_rank}.pt", weights_only=True)
                self._load_local_optimizers(saved["states"], saved["world_size"], path)
            return checkpoint
        checkpoint = _lazy_load(path)
        state = _materialize_tensors(checkpoint.pop("state_dict"))
        with full_state_dict_context(self.model, rank0_only=False):
            self.model.load_state_dict(state, strict=strict)
        checkpoint = _materialize_tensors(checkpoint)
        saved = checkpoint.get("optimizer_states")
        if fitting and self.optimizers and saved:
            ranks = [s.get(RANK_STATES) if isinstance(s, dict) else None for s in saved]
            if any(r is None for r in ranks):
                raise ConfigError(
                    f"checkpoint {path} holds optimiser states that were not saved per rank by "
                    "trainer=fsdp; resume it with the strategy that wrote it"
                )
            size = len(ranks[0])
            local = [r[self.global_rank] if self.global_rank < len(r) else None for r in ranks]
            self._load_local_optimizers(local, size, path)
        return checkpoint

    def _load_local_optimizers(self, states: list[Any], world_size: int, path: Path) -> None:
        if world_size != self.world_size:
            raise ConfigError(
                f"checkpoint {path} was written by {world_size} FSDP ranks and its optimiser "
                f"states are sharded for them; resume it with {world_size} ranks "
                f"(trainer.devices x trainer.num_nodes), not {self.world_size}"
            )
        if len(states) != len(self.optimizers):
            raise ConfigError(
                f"checkpoint {path} holds {len(states)} optimiser states, the model has "
                f"{len(self.optimizers)} (one per phase)"
            )
        for optimizer, state in zip(self.optimizers, states):
            optimizer.load_state_dict(state)

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        module = self.lightning_module
        if not getattr(module, "schedule", None):  # a family's own training_step: one forward
            return super().training_step(*args, **kwargs)
        with self.precision_plugin.train_step_context(), self._cpu_autocast():
            return module.training_step(*args, **kwargs)

    def _cpu_autocast(self) -> ContextManager[Any]:
        # Lightning's FSDP mixed precision autocasts on CUDA only; on CPU the inputs must be cast
        # to the units' bf16/fp16 parameters as well.
        dtype = getattr(self.mixed_precision_config, "param_dtype", None)
        if self.root_device.type != "cpu" or dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cpu", dtype=dtype)


class _TicketPrecision(FSDPPrecision):
    """FSDP's precision plugin, passing the online data module's tickets through untouched.

    Lightning casts each batch's floating tensors before the transfer hooks run; an online run's
    "batch" is then still a frozen ticket (the replay is sampled in the transfer hook), which
    Lightning's collection walker refuses. The sampled batch is cast by the model's own forward.
    """

    def convert_input(self, data: Any) -> Any:
        if dataclasses.is_dataclass(data) and not isinstance(data, type):
            return data
        return super().convert_input(data)
