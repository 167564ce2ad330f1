"""The :class:`WorldModel` LightningModule base class that every family extends.

Axis legend used throughout worldflux: ``B`` batch, ``T`` time, ``H`` horizon, ``A`` action size,
``C, Hh, W`` image channels, height, width, ``D`` vector size.

Batch format (the replay buffer, the datasets and ``loss`` all use it). Step ``t`` holds the
observation ``obs[t]``, the action ``action[t]`` that *led to it* (zeros on the first step of an
episode), the reward ``reward[t]`` received on arriving, and flags ``first[t]`` (episode start) and
``terminal[t]`` (episode ended in a terminal state)::

    {"obs": (B, T, *obs_shape) or {name: (B, T, *shape)},   # images may be uint8 in [0, 255]
     "action": (B, T, A) float,  # one-hot for discrete actions, [-1, 1] for continuous ones
     "reward": (B, T) float, "first": (B, T) bool, "terminal": (B, T) bool,
     "task": (B,) long, optional, multitask families only,
     "goal": (B, *obs_shape) or {name: (B, *shape)}, optional, goal-conditioned data only}

``goal`` is a goal observation in the observation format (one per sequence). Goal-reaching
environments provide it with ``env.goal_observation()`` (same format as their observations, fixed
for the episode; their ``spec.extras["goal"]`` is ``True``), and ``act(obs, state, goal=...)``
plans toward it with a planner whose objective is ``goal`` (docs/planning.md).

Observation modalities (``WorldModelConfig.modalities``) are ``vector`` ``(D,)``, ``image``
``(C, H, W)`` and ``video`` ``(T', C, H, W)``, a clip of ``T'`` frames per step, so a video
modality's batch entry is ``(B, T, T', C, H, W)``; families list the kinds they take in
``SUPPORTED_MODALITIES``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

import lightning as L
import torch
from torch import Tensor, nn

from worldflux.core.config import WorldModelConfig
from worldflux.core.training import PhaseTraining
from worldflux.errors import ComponentError, UnsupportedOperationError

#: The operations a family may support; ``WorldModel.capabilities`` lists the supported ones.
OPERATIONS = (
    "initial_state",
    "encode",
    "observe",
    "transition",
    "decode",
    "rollout",
    "loss",
    "act",
)

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"
#: The ``metadata.json`` key holding the SHA-256 of ``model.safetensors`` (checked on load).
CHECKSUM_KEY = "weights_sha256"


@dataclass
class LossOutput:
    """What :meth:`WorldModel.loss` returns.

    Attributes:
        total: scalar tensor that the optimiser minimises.
        components: the weighted loss terms that make up ``total`` (``{"reward": ..., ...}``).
        metrics: diagnostics (detached scalars), e.g. KL, entropies, return scale.
        outputs: anything a later phase of the same update reads (e.g. rolled-out latents);
            never logged.
    """

    total: Tensor
    components: dict[str, Tensor] = field(default_factory=dict)
    metrics: dict[str, Tensor] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)


class WorldModel(PhaseTraining, L.LightningModule):
    """Base class of every world-model family.

    A subclass sets ``config_class`` (its typed config), ``capabilities`` (the names from
    :data:`OPERATIONS` it implements) and ``component_slots`` (attribute names of the replaceable
    parts), builds its parts in ``__init__`` from ``self.config``, and overrides the operations it
    supports. The hyperparameters saved in checkpoints are plain data (``{"config": {...}}``), so
    ``Family.load_from_checkpoint(path)`` needs nothing else.
    """

    config_class: ClassVar[type[WorldModelConfig]] = WorldModelConfig
    capabilities: ClassVar[frozenset[str]] = frozenset()
    component_slots: ClassVar[tuple[str, ...]] = ()
    #: Class names of the blocks that ``trainer=fsdp`` shards as one unit each (and recomputes
    #: with activation checkpointing): blocks entered only through ``forward`` and owned by one
    #: phase's modules. Empty: the whole model is one unit (sharded, but gathered at once).
    fsdp_wrap_units: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Mapping[str, Any] | WorldModelConfig) -> None:
        super().__init__()
        if isinstance(config, WorldModelConfig):
            config = config.to_dict()
        self.save_hyperparameters({"config": dict(config)})
        self.config = self.config_class.from_dict(config)
        self.init_phases()

    # ------------------------------------------------------------------ introspection
    def supports(self, operation: str) -> bool:
        """Whether this family implements ``operation`` (one of :data:`OPERATIONS`)."""
        return operation in self.capabilities

    def _unsupported(self, operation: str) -> UnsupportedOperationError:
        return UnsupportedOperationError(
            f"{type(self).__name__} does not support {operation!r}; it supports "
            f"{sorted(self.capabilities)}"
        )

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Number of parameters; ``trainable_only`` skips EMA/target copies (``requires_grad=False``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # ------------------------------------------------------------------ the contract
    def initial_state(self, batch_size: int) -> Any:
        """Recurrent/latent state for ``batch_size`` fresh episodes."""
        raise self._unsupported("initial_state")

    def encode(self, obs: Tensor | Mapping[str, Tensor]) -> Tensor:
        """Embed observations ``(B, *obs_shape)`` (or ``(B, T, *obs_shape)``) into features."""
        raise self._unsupported("encode")

    def observe(
        self, obs: Any, action: Tensor, first: Tensor, state: Any = None
    ) -> tuple[Any, Any]:
        """Posterior filtering over a sequence ``(B, T, ...)``; returns ``(states, last_state)``."""
        raise self._unsupported("observe")

    def transition(self, state: Any, action: Tensor) -> Any:
        """One prior step from ``state`` under ``action (B, A)``."""
        raise self._unsupported("transition")

    def decode(self, state: Any) -> dict[str, Tensor]:
        """Predictions from a state: any of ``obs``, ``reward``, ``continue``."""
        raise self._unsupported("decode")

    def rollout(self, state: Any, actions: Tensor) -> Any:
        """Imagine forward from ``state`` over ``actions (B, H, A)``."""
        raise self._unsupported("rollout")

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """The family's training loss on a batch of sequences (see the module docstring)."""
        raise self._unsupported("loss")

    def act(self, obs: Any, state: Any = None, **kwargs: Any) -> tuple[Tensor, Any]:
        """Actions ``(B, A)`` for a batch of environments and the next agent state."""
        raise self._unsupported("act")

    # ------------------------------------------------------------------ logging
    def should_log(self) -> bool:
        """Whether this training step's metrics reach the loggers.

        Lightning writes step metrics every ``trainer.log_every_n_steps`` steps and drops the
        values logged in between, while each ``self.log`` call costs about 2 ms on CPU; families
        therefore log only on the steps that are written (always without a Trainer or without
        loggers, where ``trainer.callback_metrics`` is the only record).
        """
        trainer = self._trainer
        connector = getattr(trainer, "_logger_connector", None)
        if trainer is None or connector is None or not trainer.loggers:
            return True
        return bool(getattr(connector, "should_update_logs", True))

    def log_train(self, metrics: Mapping[str, Tensor], batch_size: int | None = None) -> None:
        """Record one update's ``train/...`` metrics.

        Every update's values are kept in ``last_train_metrics`` (the non-finite-loss check reads
        them); they are handed to Lightning's loggers when :meth:`should_log`.
        """
        self.last_train_metrics = {k: v.detach() for k, v in metrics.items()}
        if self.should_log():
            self.log_dict(self.last_train_metrics, batch_size=batch_size)

    # ------------------------------------------------------------------ components
    def build_component(self, slot: str, **runtime: Any) -> Any:
        """Build the component of ``slot`` from its config node (``self.config.<slot>``).

        ``runtime`` holds the call-site arguments derived from the family config (widths, input
        sizes); they are remembered so that a component class given as an override can be built
        with the same arguments (see :meth:`component_arguments`).
        """
        from worldflux.core.instantiate import instantiate

        node = getattr(self.config, slot)
        if not isinstance(node, Mapping) or "_target_" not in node:
            raise ComponentError(f"config field {slot!r} is not a component node: {node!r}")
        if not hasattr(self, "_component_runtime"):
            self._component_runtime: dict[str, dict[str, Any]] = {}
        self._component_runtime[slot] = dict(runtime)
        return instantiate(node, **runtime)

    def component_arguments(self, slot: str) -> dict[str, Any]:
        """The constructor arguments ``slot`` was built with (config knobs plus runtime sizes)."""
        node = getattr(self.config, slot, None)
        if slot not in self.component_slots or not isinstance(node, Mapping):
            raise ComponentError(
                f"unknown component slot {slot!r} for {type(self).__name__}; valid slots: "
                f"{list(self.component_slots)}"
            )
        args = {k: v for k, v in node.items() if not (k.startswith("_") and k.endswith("_"))}
        args.update(getattr(self, "_component_runtime", {}).get(slot, {}))
        return args

    def replace_component(self, slot: str, component: nn.Module) -> None:
        """Install a built module in ``slot`` (one of ``component_slots``)."""
        if slot not in self.component_slots:
            raise ComponentError(
                f"unknown component slot {slot!r} for {type(self).__name__}; valid slots: "
                f"{list(self.component_slots)}"
            )
        if not isinstance(component, nn.Module):
            raise ComponentError(
                f"component for slot {slot!r} must be a torch.nn.Module, got {type(component)!r}"
            )
        setattr(self, slot, component)
        self.forget_phase_parameters()

    # ------------------------------------------------------------------ reference weights
    #: The family reads ``config.weights`` itself when it is built (its reference's files need a
    #: reader of their own, e.g. several state dicts or pickled run arguments); the factory then
    #: leaves the file alone.
    loads_weights_itself: ClassVar[bool] = False

    @classmethod
    def reference_overrides(cls, state: Mapping[str, Tensor]) -> dict[str, Any]:
        """Config overrides (spaces: observation and action sizes, tasks) stored in a state dict
        of the family's reference implementation; ``{}`` when it stores none."""
        return {}

    @classmethod
    def from_reference_state(
        cls, state: Mapping[str, Tensor], config: WorldModelConfig
    ) -> dict[str, Tensor]:
        """Our state dict for a state dict in the reference implementation's layout.

        Families whose reference releases weights override this (see :mod:`worldflux.weights`).
        """
        raise KeyError(
            f"{cls.__name__} has no mapping from a reference implementation's weights, and the "
            f"keys are not its own (first key: {next(iter(state), None)!r})"
        )

    # ------------------------------------------------------------------ persistence
    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: str | Path | IO[Any],
        map_location: Any = None,
        hparams_file: str | Path | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Lightning's ``load_from_checkpoint``, always weights-only (no pickled code runs).

        The family's parts are built from the saved config through the instantiation gate. A
        missing, unreadable or non-fitting checkpoint is a
        :class:`~worldflux.errors.ModelFileError` naming the file.
        """
        from worldflux.loading import checkpoint_errors

        kwargs["weights_only"] = True
        with checkpoint_errors(checkpoint_path):
            return super().load_from_checkpoint(  # type: ignore[misc]
                checkpoint_path, map_location, hparams_file, strict, **kwargs
            )

    def save_pretrained(self, path: str | os.PathLike[str], model_id: str | None = None) -> Path:
        """Write ``config.yaml``, ``model.safetensors`` and ``metadata.json`` into ``path``.

        Each file is written to a temporary name and renamed, so a crash never leaves a
        half-written file behind. ``metadata.json`` records the SHA-256 of the weights
        (``weights_sha256``), which loading verifies. ``create_world_model(path)`` loads the result.
        """
        import yaml
        from safetensors.torch import save_file

        import worldflux
        from worldflux.loading import sha256_file

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous().clone() for k, v in self.state_dict().items()}
        _atomic_write(out / CONFIG_FILE, yaml.safe_dump(self.config.to_dict(), sort_keys=False))
        fd, tmp = tempfile.mkstemp(dir=out, suffix=".tmp")
        os.close(fd)
        save_file(state, tmp, metadata={"format": "pt"})
        checksum = sha256_file(Path(tmp))  # of the bytes renamed into place, not re-read later
        _umask_mode(tmp)
        os.replace(tmp, out / WEIGHTS_FILE)
        meta = {
            "worldflux_version": worldflux.__version__,
            "torch_version": torch.__version__,
            "family": self.config.family,
            "model_id": model_id,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "num_parameters": self.num_parameters(),
            CHECKSUM_KEY: checksum,
        }
        _atomic_write(out / METADATA_FILE, json.dumps(meta, indent=2))
        return out


def _umask_mode(path: str) -> None:
    """Give a ``mkstemp`` file (always 0600) the mode a plain ``open`` would: 0666 minus umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    _umask_mode(tmp)
    os.replace(tmp, path)
