"""User components for the tests: their signatures differ from the shipped components'.

They live under ``tests.security.``, a prefix the gate admits only when a test allows it (as a
user would allow ``mypkg.``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn


class LinearEncoder(nn.Module):
    """A TD-MPC2 encoder with one linear layer: takes ``obs_shape`` and ``latent_dim`` only."""

    def __init__(self, obs_shape: Sequence[int], latent_dim: int, width: int = 8) -> None:
        super().__init__()
        self.width = width
        self.net = nn.Sequential(nn.Linear(int(obs_shape[0]), width), nn.Linear(width, latent_dim))

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs)


class VectorMLPEncoder(nn.Module):
    """A DreamerV3 vector encoder: takes ``modalities`` and its own ``hidden`` (no ``mults``)."""

    def __init__(self, modalities: Mapping[str, Any], hidden: int = 12) -> None:
        super().__init__()
        size = sum(int(spec["shape"][0]) for spec in modalities.values())
        self.out_dim = hidden
        self.net = nn.Sequential(nn.Linear(size, hidden), nn.SiLU())

    def forward(self, obs: Mapping[str, Tensor] | Tensor) -> Tensor:
        x = torch.cat(list(obs.values()), -1) if isinstance(obs, Mapping) else obs
        return self.net(x.float())


#: Not defined here: a re-export the gate must refuse even under an allowed prefix.
Popen = __import__("subprocess").Popen
