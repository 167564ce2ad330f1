"""Typed config of the PhaseDemo family (no torch imports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worldflux.core.config import WorldModelConfig, base_default
from worldflux.errors import ConfigError


@dataclass
class PhaseDemoConfig(WorldModelConfig):
    """Hyperparameters of :class:`~worldflux.models.phasedemo.module.PhaseDemo`.

    Attributes:
        latent_dim: size of the latent the autoencoder learns.
        lr: learning rate of every phase's optimiser.
        weight_decay: decoupled weight decay of the dynamics phase (AdamW).
        batch_size, batch_length: the default batch shape (phases may set their own).
        train_ratio: replayed steps per environment step.
    """

    _target_: str = "worldflux.models.phasedemo.module.PhaseDemo"
    family: str = "phasedemo"
    obs_shape: list[int] = field(default_factory=lambda: [8])
    action_dim: int = 2
    action_kind: str = "continuous"
    phases: Any = field(default_factory=lambda: base_default("phasedemo", "phases"))
    latent_dim: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 4
    batch_length: int = 4
    train_ratio: float = 16.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("latent_dim", "batch_size", "batch_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.train_ratio <= 0 or self.weight_decay < 0:
            raise ConfigError(
                "lr and train_ratio must be > 0 and weight_decay >= 0, got "
                f"lr={self.lr}, train_ratio={self.train_ratio}, weight_decay={self.weight_decay}"
            )
