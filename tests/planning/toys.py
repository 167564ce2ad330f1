"""Toy planning models with known dynamics, shared by the planner tests."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class PointMass:
    """``z`` is a position; an action moves it by ``step * action``; the reward is minus the
    squared distance to a per-environment goal; value 0. Encoding is the identity (goal planning).
    """

    def __init__(self, goal: Tensor | None = None, step: float = 0.5) -> None:
        self.goal = goal  # (B, A)
        self.step = step

    def _goal(self, z: Tensor) -> Tensor:
        assert self.goal is not None
        return self.goal.repeat_interleave(z.shape[0] // self.goal.shape[0], dim=0)

    def plan_encode(self, obs: Any, task: Tensor | None) -> Tensor:
        return torch.as_tensor(obs, dtype=torch.float32)

    def plan_next(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        return z + self.step * action

    def plan_reward(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        return -(z + self.step * action - self._goal(z)).pow(2).sum(-1)

    def plan_value(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        return torch.zeros(z.shape[0])


class ReachModel(PointMass):
    """The exact dynamics of :class:`worldflux.envs.embedded.Reach` (vector observations)."""

    def __init__(self, step: float = 0.2) -> None:
        super().__init__(None, step)

    def plan_next(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        return (z + self.step * action.clamp(-1, 1)).clamp(-1, 1)
