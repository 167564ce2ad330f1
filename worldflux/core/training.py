"""The generic phase-driven training step shared by every :class:`~worldflux.core.model.WorldModel`.

A family that declares ``phases`` in its config (:mod:`worldflux.core.phases`) implements
``phase_loss(name, batch, outputs)`` (and optionally ``after_phase(name)``, e.g. for EMA targets)
and inherits everything else: one optimiser per phase built from the phase's ``_target_`` node,
manual optimisation, clipping, warm-up, logging, and honest counters (one *update* is one pass over
the due phases, so ``trainer.global_step`` counts updates, not optimiser steps).

Within one update the due phases run in declaration order. Each phase zeroes every gradient
first, so a loss that reaches another phase's modules never leaks gradients into that phase.
``outputs`` maps the names of the phases that already ran in this update to their
:class:`~worldflux.core.model.LossOutput`; a phase declared with ``batch: <earlier phase>`` trains
on that phase's batch and reads what it left in ``LossOutput.outputs`` (TD-MPC2's policy phase
reads the model phase's rolled-out latents).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from worldflux.core.phases import Phase, Schedule, parse_phases
from worldflux.errors import ConfigError, UnsupportedOperationError

if TYPE_CHECKING:
    from worldflux.core.model import LossOutput

#: Key of the phase counters in Lightning checkpoints.
CHECKPOINT_KEY = "worldflux_phases"


class PhaseTraining:
    """Mixin with the phase machinery (see the module docstring); used by ``WorldModel``."""

    config: Any
    schedule: Schedule
    #: ``torch.compile`` keyword arguments of :meth:`compile_phases` (families may adjust them).
    compile_options: dict[str, Any] = {}

    def init_phases(self) -> None:
        """Parse ``config.phases`` (if the family declares any) and switch to manual optimisation."""
        self.schedule = Schedule(parse_phases(getattr(self.config, "phases", None), self.config))
        self.updates_done = 0  # updates run by this module (restored from checkpoints)
        self.phase_steps: dict[str, int] = {p.name: 0 for p in self.schedule.phases}
        self._loss_fn: Callable[..., LossOutput] | None = None
        self.compile_requested = False  # set by compile_phases (compile=true)
        if self.schedule:
            self.automatic_optimization = False

    # ------------------------------------------------------------------ hooks for families
    def phase_loss(
        self, name: str, batch: Mapping[str, Any], outputs: Mapping[str, LossOutput]
    ) -> LossOutput:
        """The loss of phase ``name`` on ``batch``; families with phases override it."""
        raise UnsupportedOperationError(
            f"{type(self).__name__} declares phases but does not implement phase_loss"
        )

    def after_phase(self, name: str) -> None:
        """Called after phase ``name``'s optimiser step (EMA updates and the like)."""

    # ------------------------------------------------------------------ optimisers
    def phase_modules(self, phase: Phase) -> list[torch.nn.Module]:
        """The modules phase ``phase`` trains (``None`` attributes, e.g. absent heads, skipped)."""
        out = []
        for name in phase.modules:
            if not hasattr(self, name):
                raise ConfigError(
                    f"phases.{phase.name}.modules names {name!r}, which "
                    f"{type(self).__name__} does not have"
                )
            module = getattr(self, name)
            if module is not None:
                out.append(module)
        return out

    def phase_parameters(self, phase: Phase) -> list[torch.nn.Parameter]:
        """Trainable parameters of ``phase``, in module order (cached per phase)."""
        cache = self.__dict__.setdefault("_phase_params", {})
        key = (phase.name, phase.modules)
        if key not in cache:
            mods = self.phase_modules(phase)
            cache[key] = [p for m in mods for p in m.parameters() if p.requires_grad]
        return cache[key]

    def forget_phase_parameters(self) -> None:
        """Drop the cached parameter lists (after a component was replaced)."""
        self.__dict__.pop("_phase_params", None)

    def build_phase_optimizer(self, phase: Phase) -> torch.optim.Optimizer:
        """The optimiser of ``phase`` from its ``_target_`` node, with its parameter groups."""
        from worldflux.core.instantiate import instantiate

        params = self.phase_parameters(phase)
        node = dict(phase.optimizer)
        lr = node.get("lr")
        groups: list[dict[str, Any]] = []
        taken: set[int] = set()
        for i, group in enumerate(phase.param_groups):
            mods = Phase(phase.name, group.modules, phase.optimizer)
            own = [p for p in self.phase_parameters(mods) if id(p) not in taken]
            taken.update(id(p) for p in own)
            entry: dict[str, Any] = {"params": own}
            if group.lr_scale != 1.0:
                if not isinstance(lr, (int, float)):
                    raise ConfigError(
                        f"phases.{phase.name}.param_groups[{i}].lr_scale needs "
                        f"phases.{phase.name}.optimizer.lr, got {lr!r}"
                    )
                entry["lr"] = lr * group.lr_scale
            if group.weight_decay is not None:
                entry["weight_decay"] = group.weight_decay
            groups.append(entry)
        rest = [p for p in params if id(p) not in taken]
        if groups:
            groups.append({"params": rest})
        if phase.weight_decay is not None:
            groups = _split_decay(groups or [{"params": rest}], phase.weight_decay)
        if not params:
            raise ConfigError(f"phase {phase.name!r} has no trainable parameters")
        factory = instantiate({**node, "_partial_": True})
        return factory(groups or params)

    def configure_optimizers(self) -> Any:
        """One optimiser per phase, in declaration order (families without phases override)."""
        if not self.schedule:
            raise UnsupportedOperationError(
                f"{type(self).__name__} declares no phases; it must define configure_optimizers"
            )
        self.forget_phase_parameters()  # parameters may have been re-created by a device move
        return [self.build_phase_optimizer(p) for p in self.schedule.phases]

    # ------------------------------------------------------------------ the update
    def run_update(
        self,
        batches: Mapping[str, Mapping[str, Any]],
        optimizers: Sequence[Any],
        log: bool = True,
    ) -> tuple[dict[str, Tensor], dict[str, LossOutput]]:
        """One update: every phase named in ``batches`` runs on its batch, in declared order.

        Args:
            batches: ``{phase: batch}`` for the phases to run (a phase declared with
                ``batch: <other>`` maps to the other phase's batch object).
            optimizers: one per declared phase (``configure_optimizers`` order); Lightning's
                wrapped optimisers or plain ones.
            log: compute the gradient norms of unclipped phases for the logs.

        Returns:
            ``(metrics, outputs)``: detached metrics keyed ``loss/<term>``, ``loss/<phase>``,
            ``loss/total`` (the sum of the phases' losses), ``grad/<phase>_norm`` and the
            families' own diagnostics; and each phase's :class:`LossOutput`.
        """
        phases = self.schedule.phases
        if len(optimizers) != len(phases):
            raise ConfigError(
                f"expected {len(phases)} optimisers (one per phase), got {len(optimizers)}"
            )
        outputs: dict[str, LossOutput] = {}
        metrics: dict[str, Tensor] = {}
        total: Tensor | None = None
        stepped = False
        loss_fn = self._loss_fn or self.phase_loss
        for index, phase in enumerate(phases):
            batch = batches.get(phase.name)
            if batch is None:
                continue
            if phase.batch is not None and phase.batch not in outputs:
                raise ConfigError(
                    f"phase {phase.name!r} trains on phase {phase.batch!r}'s batch, which did "
                    "not run in this update"
                )
            opt = optimizers[index]
            self.zero_grad(set_to_none=True)  # type: ignore[attr-defined]
            shard = self.sharding
            if shard is None:
                out = loss_fn(phase.name, batch, outputs)
            else:
                out = shard.run_loss(loss_fn, phase.name, batch, outputs)
            self._phase_backward(out.total)
            params = self.phase_parameters(phase)
            norm = None
            if phase.clip_grad_norm is not None:
                norm = self._clip_gradients(params, phase.clip_grad_norm)
            elif log:
                norm = _grad_norm(params) if shard is None else shard.grad_norm(params)
            self._apply_warmup(phase, opt)
            _step(opt, count=not stepped)
            stepped = True
            opt.zero_grad(set_to_none=True)
            self.phase_steps[phase.name] += 1
            if shard is None:
                self.after_phase(phase.name)
            else:
                shard.run_after_phase(self.after_phase, phase.name)
            outputs[phase.name] = out
            metrics.update({f"loss/{k}": v.detach() for k, v in out.components.items()})
            metrics.update({k: v.detach() for k, v in out.metrics.items()})
            metrics[f"loss/{phase.name}"] = out.total.detach()
            if norm is not None:
                metrics[f"grad/{phase.name}_norm"] = norm.detach()
            total = out.total.detach() if total is None else total + out.total.detach()
        if total is not None:
            metrics["loss/total"] = total
        self.updates_done += 1
        return metrics, outputs

    def phase_batches(self, batch: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
        """``{phase: batch}`` from what the data module served.

        The data module serves ``{phase: batch}`` for the due phases; a plain batch (``obs`` at the
        top, e.g. from a user's ``DataLoader``) goes to every phase due in this update.
        """
        if "obs" in batch or not self.schedule:
            return {p.name: batch for p in self.schedule.due(self.updates_done)}
        return batch

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor | None:
        """Lightning manual-optimisation step: :meth:`run_update` with the trainer's optimisers."""
        if not self.schedule:
            raise UnsupportedOperationError(
                f"{type(self).__name__} declares no phases; it must define training_step"
            )
        opts = self.optimizers()  # type: ignore[attr-defined]
        opts = opts if isinstance(opts, (list, tuple)) else [opts]
        batches = self.phase_batches(batch)
        log = self.should_log()  # type: ignore[attr-defined]
        metrics, _ = self.run_update(batches, opts, log=log)
        first = next(iter(batches.values()), None)
        size = int(first["reward"].shape[0]) if first is not None and "reward" in first else None
        self.log_train({f"train/{k}": v for k, v in metrics.items()}, batch_size=size)  # type: ignore[attr-defined]
        return metrics.get("loss/total")

    # ------------------------------------------------------------------ compile
    def compile_phases(self, **options: Any) -> None:
        """Compile ``phase_loss`` and the planner's inner loop with ``torch.compile``.

        The phase losses get forward and backward graphs; a model holding a planner (attribute
        ``planner`` with a ``compile`` method, see :meth:`worldflux.planning.base.Planner.compile`)
        gets its sequence scoring compiled too. ``options`` go to ``torch.compile`` (over the
        family's ``compile_options``). Afterwards ``compile_requested`` is true.
        """
        self._loss_fn = self.compile_fn(self.phase_loss, **options)
        planner = getattr(self, "planner", None)
        if planner is not None and hasattr(planner, "compile"):
            planner.compile(lambda fn: self.compile_fn(fn, **options))
        self.compile_requested = True

    def compile_fn(self, fn: Callable[..., Any], **options: Any) -> Callable[..., Any]:
        """``torch.compile(fn)`` with this family's ``compile_options`` (for planners' loops)."""
        return torch.compile(fn, **{**self.compile_options, **options})

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {"updates": self.updates_done, "steps": dict(self.phase_steps)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get(CHECKPOINT_KEY)
        if state:
            self.updates_done = int(state["updates"])
            self.phase_steps.update({k: int(v) for k, v in state["steps"].items()})

    # ------------------------------------------------------------------ helpers
    #: Set by a sharding strategy (:class:`worldflux.training.sharded.ShardedPhases` under
    #: FSDP): runs each phase's loss and ``after_phase`` with the parameters gathered and
    #: computes gradient norms over the ranks' shards. ``None``: parameters are whole.
    sharding: Any = None

    def _clip_gradients(self, params: Sequence[Tensor], max_norm: float) -> Tensor:
        if self.sharding is None:
            return torch.nn.utils.clip_grad_norm_(params, max_norm)
        norm = self.sharding.grad_norm(params)  # of the whole gradient, as unsharded clipping
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            scale = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
            torch._foreach_mul_(grads, scale.to(grads[0].device, grads[0].dtype))
        return norm

    def _phase_backward(self, loss: Tensor) -> None:
        if getattr(self, "_trainer", None) is not None:
            self.manual_backward(loss)  # type: ignore[attr-defined]  # precision and DDP hooks
        else:
            loss.backward()

    def _apply_warmup(self, phase: Phase, opt: Any) -> None:
        if not phase.scheduled:
            return
        scale = phase.lr_scale(self.phase_steps[phase.name])
        for group in _raw(opt).param_groups:
            group.setdefault("base_lr", group["lr"])
            group["lr"] = group["base_lr"] * scale


def _raw(opt: Any) -> torch.optim.Optimizer:
    return getattr(opt, "optimizer", opt)


def _step(opt: Any, count: bool) -> None:
    """Step ``opt``; through Lightning only the first step of an update counts as a global step."""
    hooks = ("_on_before_step", "_on_after_step")
    if count or not all(hasattr(opt, h) for h in hooks):
        opt.step()
        return
    saved = [getattr(opt, h) for h in hooks]
    for h in hooks:
        setattr(opt, h, _noop)
    try:
        opt.step()  # still through the precision plugin (loss scaling, bf16)
    finally:
        for h, fn in zip(hooks, saved):
            setattr(opt, h, fn)


def _noop() -> None:
    return None


def _grad_norm(params: Sequence[Tensor]) -> Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def _split_decay(groups: list[dict[str, Any]], decay: float) -> list[dict[str, Any]]:
    """Weight-decay grouping: matrices and kernels decay, biases and norm gains (1-D) do not."""
    out = []
    for group in groups:
        for has_decay in (True, False):
            # a sharding strategy flattens parameters and records their true rank first
            params = [
                p for p in group["params"]
                if (getattr(p, "unsharded_dim", p.dim()) >= 2) == has_decay
            ]  # fmt: skip
            if params:
                wd = group.get("weight_decay", decay) if has_decay else 0.0
                out.append({**group, "params": params, "weight_decay": wd})
    return out
