"""Collect experience: step a :class:`VectorEnv` with a policy and write the replay.

The policy is the model's own agent (``model.act``: DreamerV3's actor, TD-MPC2's planner) once
prefilling is over, and uniformly random actions before that or for families without ``act``.

Axis legend: ``N`` environments, ``A`` action size.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np

from worldflux.data.replay import Replay
from worldflux.envs.base import SINGLE, EnvSpec
from worldflux.envs.vector import VectorEnv


def random_actions(spec: EnvSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniformly random actions ``(n, A)``: one-hot or uniform in ``[-1, 1]``."""
    if spec.action_kind == "discrete":
        return np.eye(spec.action_dim, dtype=np.float32)[rng.integers(spec.action_dim, size=n)]
    return rng.uniform(-1.0, 1.0, size=(n, spec.action_dim)).astype(np.float32)


def behaviour_actions(envs: Any, spec: EnvSpec, rng: np.random.Generator) -> np.ndarray:
    """The environments' own behaviour policy where each defines one, else uniform actions.

    An environment may define ``behaviour_action() -> action or None``: the action its offline
    data are collected with (e.g. PLDM's directed random walks on the wall,
    :class:`worldflux.envs.wall.Wall`); ``None`` from any environment means uniform actions.
    """
    inner = getattr(envs, "envs", None)
    if inner and all(hasattr(env, "behaviour_action") for env in inner):
        actions = [env.behaviour_action() for env in inner]
        if all(a is not None for a in actions):
            return np.stack(actions).astype(np.float32)
    return random_actions(spec, envs.num_envs, rng)


def obs_to_torch(obs: dict[str, np.ndarray], spec: EnvSpec, device: Any) -> Any:
    """Observations as the models take them: a tensor for one modality, else a dict."""
    import torch

    out = {k: torch.as_tensor(v, device=device) for k, v in obs.items()}
    return out[SINGLE] if spec.single else out


class Collector:
    """Steps environments with a policy, writes every step to a replay and keeps statistics.

    Args:
        envs: the environments.
        replay: where steps are written (``None`` for evaluation-only use).
        seed: seed of the random policy.
        window: number of recent episodes the return/length statistics average over.
    """

    def __init__(
        self, envs: VectorEnv, replay: Replay | None, seed: int = 0, window: int = 20
    ) -> None:
        self.envs = envs
        self.replay = replay
        self.spec = envs.spec
        self.rng = np.random.default_rng(seed)
        self.env_steps = 0
        self.episodes = 0
        self.window = int(window)
        self.scores: deque[float] = deque(maxlen=window)
        self.lengths: deque[int] = deque(maxlen=window)
        #: Finished episodes not yet handed to the loggers: ``(return, length, env step)``.
        self.unlogged: list[tuple[float, int, int]] = []
        self.agent_state: Any = None
        self.last: dict[str, Any] | None = None
        self.collect_time = 0.0

    def step(self, model: Any = None, eval_mode: bool = False) -> dict[str, Any]:
        """One step of every environment: random actions when ``model`` is ``None``."""
        start = time.perf_counter()
        if self.last is None:
            actions = None
        elif model is None:
            actions = behaviour_actions(self.envs, self.spec, self.rng)
        else:
            actions = self._policy(model, eval_mode)
        step = self.envs.step(actions)
        if self.replay is not None:
            self.replay.add(step)
        self.last = step
        self.env_steps += self.envs.num_envs
        for ep in self.envs.pop_finished():
            self.episodes += 1
            self.scores.append(ep.score)
            self.lengths.append(ep.length)
            self.unlogged.append((float(ep.score), int(ep.length), self.env_steps))
        self.collect_time += time.perf_counter() - start
        return step

    def _policy(self, model: Any, eval_mode: bool) -> np.ndarray:
        import torch

        assert self.last is not None
        device = getattr(model, "device", "cpu")
        obs = obs_to_torch(self.last["obs"], self.spec, device)
        first = torch.as_tensor(self.last["first"], device=device)
        with torch.no_grad():
            action, self.agent_state = model.act(
                obs, self.agent_state, first=first, eval_mode=eval_mode
            )
        return action.detach().float().cpu().numpy().reshape(self.envs.num_envs, -1)

    def restart(self) -> None:
        """Start fresh episodes everywhere (after a resume: the environments cannot be saved)."""
        self.envs.restart()
        self.last = None
        self.agent_state = None

    def pop_unlogged(self) -> list[tuple[float, int, int]]:
        """Every episode finished since the last call: ``(return, length, env step at its end)``.

        The loggers need each episode, not only the ones that end right before a logged update,
        or learning curves are drawn from a biased sample.
        """
        out, self.unlogged = self.unlogged, []
        return out

    def stats(self) -> dict[str, float]:
        """Mean return and length over the recent episodes (empty before the first one ends).

        ``env/return`` (the value sweeps optimise) equals ``env/return_mean<window>``;
        ``env/return_count`` says how many episodes the mean covers (fewer than the window early
        in a run).
        """
        if not self.scores:
            return {}
        mean = float(np.mean(self.scores))
        return {
            "env/return": mean,
            f"env/return_mean{self.window}": mean,
            "env/return_count": float(len(self.scores)),
            "env/length": float(np.mean(self.lengths)),
        }

    def state_dict(self) -> dict[str, Any]:
        """Counters and the recent-episode window (the environments restart on resume)."""
        return {
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "scores": list(self.scores),
            "lengths": list(self.lengths),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.env_steps = int(state["env_steps"])
        self.episodes = int(state["episodes"])
        self.scores.extend(state["scores"])
        self.lengths.extend(state["lengths"])
        self.restart()
