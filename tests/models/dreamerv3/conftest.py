"""Fixtures of the DreamerV3 tests: tiny models and synthetic replay batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from worldflux import get_config
from worldflux.models.dreamerv3.config import DreamerV3Config
from worldflux.models.dreamerv3.module import DreamerV3

VECTOR = {"obs_shape": [7], "action_kind": "continuous", "action_dim": 3}
MULTIMODAL = {
    "observation_modalities": {
        "cam": {"kind": "image", "shape": [3, 64, 64]},
        "joints": {"kind": "vector", "shape": [5]},
    }
}


def make_batch(config: DreamerV3Config, b: int = 2, t: int = 6, seed: int = 0) -> dict[str, Any]:
    """A replay batch in the ``worldflux.core.model`` format for ``config``'s spaces."""
    gen = torch.Generator().manual_seed(seed)
    obs = {}
    for name, spec in config.modalities().items():
        shape = (b, t, *spec["shape"])
        if spec["kind"] == "image":
            obs[name] = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
        else:
            obs[name] = torch.randn(shape, generator=gen)
    if config.action_kind == "discrete":
        index = torch.randint(0, config.action_dim, (b, t), generator=gen)
        action = F.one_hot(index, config.action_dim).float()
    else:
        action = torch.rand(b, t, config.action_dim, generator=gen) * 2 - 1
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    action[:, 0] = 0.0
    terminal = torch.zeros(b, t, dtype=torch.bool)
    terminal[0, -1] = True
    return {
        "obs": obs if config.multimodal else obs["obs"],
        "action": action,
        "reward": torch.randn(b, t, generator=gen),
        "first": first,
        "terminal": terminal,
    }


@pytest.fixture
def build() -> Callable[..., DreamerV3]:
    """``build(**overrides)``: a ``dreamer:ci`` model with the given config overrides."""

    def _build(**overrides: Any) -> DreamerV3:
        return DreamerV3(get_config("dreamer:ci", **overrides))

    return _build
