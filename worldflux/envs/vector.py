"""Several environments stepped together, with automatic resets.

:class:`VectorEnv` follows the DreamerV3 driver's convention: when an episode ends, the
environment's *next* step resets it (the action given for that step is ignored) and returns the
new episode's first observation with ``first=True``, reward 0 and a zero action. Every returned
step therefore matches one row of the batch format of :mod:`worldflux.core.model`: the
observation, the action that led to it, the reward received on arriving and the flags.

Axis legend: ``N`` environments, ``A`` action size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from worldflux.envs.base import Env, EnvSpec, Obs
from worldflux.errors import ConfigError, ShapeError


@dataclass
class Episode:
    """Summary of a finished episode."""

    env_index: int
    score: float
    length: int


class VectorEnv:
    """Step ``N`` environments in lock-step (in this process, one after another).

    Args:
        env_fns: one constructor per environment; all must have the same :class:`EnvSpec`.
        seed: base seed; environment ``i`` is reset with ``seed + i`` the first time.
    """

    def __init__(self, env_fns: Sequence[Callable[[], Env]], seed: int | None = None) -> None:
        if not env_fns:
            raise ConfigError("a VectorEnv needs at least one environment")
        self.envs = [fn() for fn in env_fns]
        self.spec: EnvSpec = self.envs[0].spec
        for i, env in enumerate(self.envs[1:], start=1):
            if env.spec != self.spec:
                raise ConfigError(
                    f"environment {i} has spaces {env.spec.describe()}, "
                    f"environment 0 has {self.spec.describe()}"
                )
        self.seed = seed
        self.num_envs = len(self.envs)
        self._done = np.ones(self.num_envs, dtype=bool)
        self._score = np.zeros(self.num_envs, dtype=np.float64)
        self._length = np.zeros(self.num_envs, dtype=np.int64)
        self._resets = 0
        self.finished: list[Episode] = []

    def __len__(self) -> int:
        return self.num_envs

    def step(self, actions: np.ndarray | None = None) -> dict[str, np.ndarray | Obs]:
        """Advance every environment by one step (resetting the ones whose episode ended).

        Args:
            actions: ``(N, A)`` float actions (one-hot or in ``[-1, 1]``); ``None`` is only valid
                when every environment is about to reset (the first call).

        Returns:
            ``{"obs": {name: (N, ...)}, "action": (N, A), "reward": (N,), "first": (N,),
            "terminal": (N,), "last": (N,)}``; ``last`` marks the final step of an episode
            (terminal or truncated). Goal-reaching environments (``spec.extras["goal"]``) add
            ``"goal": {name: (N, ...)}``, each episode's goal observation; environments that
            record their exact time derivative (``spec.extras["state_dot"]``, the embedded
            physics systems) add ``"state_dot": (N, D)``, each observed state's ``dx/dt``.
        """
        n, a = self.num_envs, self.spec.action_dim
        if actions is None:
            if not self._done.all():
                raise ShapeError("actions are required once the environments are running")
            actions = np.zeros((n, a), dtype=np.float32)
        actions = np.asarray(actions, dtype=np.float32)
        if actions.shape != (n, a):
            raise ShapeError(f"expected actions of shape ({n}, {a}), got {actions.shape}")
        rows = [self._step_one(i, actions[i]) for i in range(n)]
        obs = {k: np.stack([r[0][k] for r in rows]) for k in self.spec.obs}
        out: dict[str, np.ndarray | Obs] = {
            "obs": obs,
            "action": np.stack([r[1] for r in rows]).astype(np.float32),
            "reward": np.array([r[2] for r in rows], dtype=np.float32),
            "first": np.array([r[3] for r in rows], dtype=bool),
            "terminal": np.array([r[4] for r in rows], dtype=bool),
            "last": np.array([r[5] for r in rows], dtype=bool),
        }
        if self.spec.extras.get("goal"):  # goal-reaching envs: each episode's goal observation
            goals = [env.goal_observation() for env in self.envs]  # type: ignore[attr-defined]
            out["goal"] = {k: np.stack([g[k] for g in goals]) for k in self.spec.obs}
        if self.spec.extras.get("state_dot"):  # exact dx/dt of each observed state
            derivs = [env.state_derivative() for env in self.envs]  # type: ignore[attr-defined]
            out["state_dot"] = np.stack(derivs).astype(np.float32)
        return out

    def _step_one(
        self, i: int, action: np.ndarray
    ) -> tuple[Obs, np.ndarray, float, bool, bool, bool]:
        env = self.envs[i]
        if self._done[i]:
            seed = None if self.seed is None or self._resets >= self.num_envs else self.seed + i
            self._resets += 1
            obs = env.reset(seed=seed)
            self._done[i] = False
            self._score[i], self._length[i] = 0.0, 0
            return obs, np.zeros_like(action), 0.0, True, False, False
        obs, reward, terminated, truncated = env.step(action)
        self._score[i] += reward
        self._length[i] += 1
        last = bool(terminated or truncated)
        if last:
            self._done[i] = True
            self.finished.append(Episode(i, float(self._score[i]), int(self._length[i])))
        return obs, action, float(reward), False, bool(terminated), last

    def restart(self) -> None:
        """Mark every environment for reset on the next step (used after resuming a run)."""
        self._done[:] = True

    def pop_finished(self) -> list[Episode]:
        """Episodes finished since the last call."""
        out, self.finished = self.finished, []
        return out

    def render(self, index: int = 0) -> np.ndarray:
        """An RGB frame of environment ``index``."""
        return self.envs[index].render()

    def close(self) -> None:
        """Close every environment."""
        for env in self.envs:
            env.close()
