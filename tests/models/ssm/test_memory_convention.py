"""The Memory task's data as the world models train on it (docs/learning.md, ssm section).

Guards the conventions the memory probe (``scripts/probe_memory.py``) checked: the replay stores
each step with the action that led to it, so the answer and its reward share the terminal row;
the next row starts a new episode with a zero action; and in both families of the DreamerV3
lineage the deterministic state of the answer step (which the reward head reads) depends on the
answer given there, while the cue step's state does not depend on the cue.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldflux import create_world_model
from worldflux.data.replay import Replay
from worldflux.envs.registry import make_vector_env
from worldflux.training.collector import Collector

DELAY = 2


def _replay(steps: int = 200) -> Replay:
    cfg = {"suite": "embedded", "id": "memory", "delay": DELAY, "cues": 2, "num_envs": 2}
    envs = make_vector_env(cfg, seed=3)
    replay = Replay(envs.spec, 2 * steps, envs.num_envs, seed=3)
    collector = Collector(envs, replay, seed=3)
    for _ in range(steps):
        collector.step(None)
    return replay


def test_replay_rows_pair_the_answer_with_its_reward() -> None:
    replay = _replay()
    data = {k: v[:, : int(replay.count.max())] for k, v in replay.data.items()}
    checked = 0
    for s in range(replay.num_streams):
        obs, act, rew = data["obs/obs"][s], data["action"][s], data["reward"][s]
        first, term = data["first"][s], data["terminal"][s]
        for t in np.flatnonzero(first):
            if t + DELAY + 3 > len(first):
                break
            end = t + DELAY + 2  # cue, DELAY blanks, query, answer row
            assert term[end] and not term[t:end].any() and not first[t + 1 : end + 1].any()
            assert obs[end - 1, -1] == 1.0  # the query is the observation before the answer
            cue = int(np.argmax(obs[t, :2]))
            answer = int(np.argmax(act[end]))
            assert rew[end] == (1.0 if answer == cue else -1.0)
            assert (rew[t:end] == 0).all() and not act[t].any()  # a start row has no action
            if end + 1 < len(first):
                assert first[end + 1]
            checked += 1
    assert checked >= 40


def _episode(cue: int, answer: int) -> dict[str, torch.Tensor]:
    t = DELAY + 3
    obs = torch.zeros(1, t, 3)
    obs[0, 0, cue] = 1.0
    obs[0, DELAY + 1, -1] = 1.0
    action = torch.zeros(1, t, 2)
    action[0, 1:, 0] = 1.0
    action[0, -1] = torch.eye(2)[answer]
    first = torch.zeros(1, t, dtype=torch.bool)
    first[0, 0] = True
    return {"obs": obs, "action": action, "first": first}


@pytest.mark.parametrize("preset", ["ssm:ci", "dreamer:ci"])
def test_answer_step_state_sees_the_answer(preset: str) -> None:
    torch.manual_seed(0)
    model = create_world_model(
        preset, obs_shape=(3,), action_spec={"kind": "discrete", "dim": 2, "num_actions": 2}
    )
    deter = {}
    with torch.no_grad():
        for cue in range(2):
            for answer in range(2):
                torch.manual_seed(1)  # the same latent samples for every pair
                ep = _episode(cue, answer)
                states, _ = model.observe(ep["obs"], ep["action"], ep["first"])
                deter[cue, answer] = states["deter"][0]
    # Only the answer differs: every step before the answer row is identical.
    same = deter[0, 0][:-1] - deter[0, 1][:-1]
    assert same.abs().max() < 1e-5
    assert (deter[0, 0][-1] - deter[0, 1][-1]).abs().max() > 1e-4
    # Only the cue differs: the cue step's own deter cannot see it (deter is computed before the
    # observation; the cue reaches later steps only through the sampled posterior latent).
    assert (deter[0, 0][0] - deter[1, 0][0]).abs().max() < 1e-5
