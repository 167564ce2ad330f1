"""Closed-loop goal reaching: plan with a JEPA model toward each episode's goal observation.

Used by the learning check (``tests/models/jepa/test_learning.py``, docs/learning.md) and by
``scripts/bench_jepa.py``. Every episode of a goal-reaching environment (``spec.extras["goal"]``,
e.g. :class:`worldflux.envs.wall.Wall`) is run with ``model.act(obs, state, goal=goal_obs)``;
the environments of one evaluation are stepped together so that the planner works on a batch.

Axis legend: ``B`` environments, ``A`` action size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from worldflux.envs.base import SINGLE
from worldflux.envs.registry import make_env
from worldflux.errors import ConfigError


def goal_success(
    model: Any,
    env_cfg: Mapping[str, Any],
    episodes: int = 20,
    seed: int = 0,
    max_steps: int | None = None,
) -> dict[str, float]:
    """Success rate of ``model`` (or ``"random"`` actions) toward held-out goals.

    Args:
        model: a model whose ``act`` accepts ``goal=``, or ``"random"`` for uniform actions.
        env_cfg: env config of a goal-reaching environment (``suite``, ``id``, arguments).
        episodes: number of episodes, run as one batch.
        seed: environment ``i`` is seeded with ``seed + i`` (fresh starts and goals).
        max_steps: steps per episode (default: the environment's truncation limit).

    Returns:
        ``{"success": fraction of episodes that reached the goal, "final_distance": mean
        distance at the end (or at success), "steps": mean steps taken}``.
    """
    envs = [make_env(env_cfg, seed=seed + i) for i in range(episodes)]
    if not envs[0].spec.extras.get("goal"):
        raise ConfigError(f"{env_cfg.get('id')!r} is not a goal-reaching environment")
    obs = np.stack([e.reset(seed=seed + i)[SINGLE] for i, e in enumerate(envs)])
    goal = torch.as_tensor(np.stack([e.goal_observation()[SINGLE] for e in envs]))  # type: ignore[attr-defined]
    limit = int(max_steps or getattr(envs[0], "max_steps", 200))
    done = np.zeros(episodes, dtype=bool)
    steps = np.zeros(episodes)
    rng = np.random.default_rng(seed)
    state = None
    for _ in range(limit):
        if model == "random":
            actions = rng.uniform(-1, 1, size=(episodes, envs[0].spec.action_dim))
        else:
            with torch.no_grad():
                act, state = model.act(torch.as_tensor(obs), state, goal=goal, eval_mode=True)
            actions = act.float().cpu().numpy()
        for i, env in enumerate(envs):
            if done[i]:
                continue
            o, _, terminated, _ = env.step(actions[i].astype(np.float32))
            obs[i] = o[SINGLE]
            steps[i] += 1
            done[i] = terminated
        if done.all():
            break
    dist = [e.distance() for e in envs]  # type: ignore[attr-defined]
    return {
        "success": float(done.mean()),
        "final_distance": float(np.mean(dist)),
        "steps": float(steps.mean()),
    }
