"""Crafter (Hafner 2021) through the ``crafter`` package (extra ``worldflux[crafter]``).

64x64 RGB observations, 17 discrete actions, the per-step achievement reward and episodes of up
to 10,000 steps: the ``crafter_reward`` task DreamerV3 trains on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worldflux.envs.base import SINGLE, Env, EnvSpec, Obs, ObsSpace, discrete_index, missing_extra


def _crafter() -> Any:
    try:
        import crafter
    except ImportError as err:
        raise missing_extra("Crafter", "crafter", err) from None
    return crafter


class Crafter(Env):
    """The Crafter world.

    Args:
        size: ``(H, W)`` of the observation.
        length: maximum steps per episode.
        seed: world seed.
    """

    def __init__(
        self,
        size: tuple[int, int] | list[int] = (64, 64),
        length: int = 10_000,
        seed: int | None = None,
    ) -> None:
        crafter = _crafter()
        self.env = crafter.Env(size=tuple(size), length=length, seed=seed)
        self.size = tuple(size)
        self.spec = EnvSpec(
            {SINGLE: ObsSpace("image", (3, *self.size))}, "discrete", int(self.env.action_space.n)
        )
        self._frame = np.zeros((*self.size, 3), np.uint8)

    def _observe(self, frame: np.ndarray) -> Obs:
        self._frame = np.asarray(frame, np.uint8)
        return {SINGLE: np.ascontiguousarray(self._frame.transpose(2, 0, 1))}

    def reset(self, seed: int | None = None) -> Obs:
        # Crafter derives each episode's world from the constructor seed and the episode count.
        return self._observe(self.env.reset())

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool]:
        frame, reward, done, info = self.env.step(discrete_index(self.check_action(action)))
        # Crafter ends an episode on death (discount 0) or on the time limit (discount 1).
        terminal = bool(done and info.get("discount", 1.0) == 0)
        return self._observe(frame), float(reward), terminal, bool(done and not terminal)

    def render(self) -> np.ndarray:
        return self._frame
