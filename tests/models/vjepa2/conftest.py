"""Shared fixtures of the V-JEPA 2 tests: the tiny presets and replay-shaped batches."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from worldflux import create_world_model
from worldflux.models.vjepa2.module import VJEPA2, VJEPA2Pretrain


def make_batch(b: int = 2, t: int = 4, action_dim: int = 2, seed: int = 0) -> dict[str, Any]:
    """A replay batch of uint8 16 x 16 frames and actions in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    return {
        "obs": torch.randint(0, 256, (b, t, 3, 16, 16), generator=g, dtype=torch.uint8),
        "action": torch.rand(b, t, action_dim, generator=g) * 2 - 1,
    }


@pytest.fixture(scope="module")
def ac() -> VJEPA2:
    return create_world_model("vjepa2:ci")


@pytest.fixture(scope="module")
def pre() -> VJEPA2Pretrain:
    return create_world_model("vjepa2:pretrain_ci")
