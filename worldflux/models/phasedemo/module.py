"""PhaseDemo: three phases on three batch shapes and schedules (not a published model).

This family exists to exercise the training-phase machinery (:mod:`worldflux.core.phases`) through
the real entry point, cheaply: schedules, counters, checkpoints and resume mid-schedule. Its
phases (``conf/model/phasedemo/base.yaml``):

- ``autoencoder``: encoder + decoder reconstruct observations, every update, short sequences;
- ``dynamics``: predicts the next (detached) latent from latent and action, starting after a few
  updates, on longer sequences with a burn-in step, AdamW with weight-decay grouping;
- ``actor``: imitates the replayed actions from detached latents, every second update, its own
  batch, gradient clipping and learning-rate warm-up.

Axis legend: ``B`` batch, ``T`` time, ``D`` flattened observation size, ``Z`` latent, ``A`` actions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from worldflux.core.model import LossOutput, WorldModel
from worldflux.errors import ShapeError
from worldflux.models.phasedemo.config import PhaseDemoConfig


class PhaseDemo(WorldModel):
    """Linear autoencoder, latent dynamics and actor trained in three phases."""

    config: PhaseDemoConfig
    config_class = PhaseDemoConfig
    capabilities = frozenset({"encode", "loss"})

    def __init__(self, config: Mapping[str, Any] | PhaseDemoConfig) -> None:
        super().__init__(config)
        c = self.config
        size = sum(math.prod(m["shape"]) for m in c.modalities().values())
        self.encoder = nn.Linear(size, c.latent_dim)
        self.decoder = nn.Linear(c.latent_dim, size)
        self.dynamics = nn.Sequential(
            nn.Linear(c.latent_dim + c.action_dim, c.latent_dim), nn.LayerNorm(c.latent_dim)
        )
        self.actor = nn.Linear(c.latent_dim, c.action_dim)

    def _flat_obs(self, obs: Any) -> Tensor:
        items = obs.values() if isinstance(obs, Mapping) else [obs]
        flat = []
        for x in items:
            x = torch.as_tensor(x, device=self.encoder.weight.device)
            x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
            flat.append(x.flatten(2))
        return torch.cat(flat, -1)

    def encode(self, obs: Tensor | Mapping[str, Tensor]) -> Tensor:
        """Latents ``(B, T, Z)`` of observations ``(B, T, ...)``."""
        return self.encoder(self._flat_obs(obs))

    def phase_loss(
        self, name: str, batch: Mapping[str, Any], outputs: Mapping[str, LossOutput]
    ) -> LossOutput:
        """The loss of ``autoencoder``, ``dynamics`` or ``actor`` on its own batch."""
        obs = self._flat_obs(batch["obs"])
        if name == "autoencoder":
            recon = (self.decoder(self.encoder(obs)) - obs).pow(2).mean()
            return LossOutput(recon, {"recon": recon})
        action = torch.as_tensor(batch["action"], device=obs.device).float()
        z = self.encoder(obs).detach()
        if name == "dynamics":
            start = int(batch.get("burn_in", 0))
            if obs.shape[1] - start < 2:
                raise ShapeError(f"the dynamics phase needs T - burn_in >= 2, got {obs.shape[1]}")
            pred = self.dynamics(torch.cat([z[:, start:-1], action[:, start + 1 :]], -1))
            loss = (pred - z[:, start + 1 :]).pow(2).mean()
            return LossOutput(loss, {"dynamics": loss})
        if name == "actor":
            loss = (torch.tanh(self.actor(z[:, :-1])) - action[:, 1:]).pow(2).mean()
            return LossOutput(loss, {"actor": loss})
        raise ShapeError(f"PhaseDemo has phases autoencoder, dynamics and actor, not {name!r}")

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """The three phases' losses on one batch (``total`` is their sum)."""
        parts = [self.phase_loss(p.name, batch, {}) for p in self.schedule.phases]
        components = {k: v for out in parts for k, v in out.components.items()}
        return LossOutput(sum((o.total for o in parts[1:]), parts[0].total), components)
