"""A ``dit:ci``-sized model built from the dataclass directly (no Hydra composition: faster)."""

from __future__ import annotations

from typing import Any

from worldflux.models.dit.config import DiTConfig
from worldflux.models.dit.module import DiT

#: ``conf/model/dit/ci.yaml``'s overrides of the base (tests/test_presets.py checks the base).
CI = dict(
    obs_shape=[3, 16, 16],
    action_dim=2,
    latent="pixels",
    patch_size=4,
    hidden_size=64,
    pos_embed_init="sincos",
    depth=2,
    num_heads=2,
    sample_steps=4,
    lr=3e-3,
    ema_decay=0.99,
    batch_size=8,
    plan_samples=32,
    plan_elites=4,
    plan_horizon=3,
    plan_iterations=2,
    plan_sample_steps=3,
    plan_blur=2.0,
    clip_denoised=True,
)


def tiny(**overrides: Any) -> DiT:
    """A ``dit:ci`` model with ``overrides``."""
    return DiT(DiTConfig(**{**CI, **overrides}))


def tiny_config(**overrides: Any) -> DiTConfig:
    """The ``dit:ci`` config with ``overrides`` (validated by ``__post_init__``)."""
    return DiTConfig(**{**CI, **overrides})
