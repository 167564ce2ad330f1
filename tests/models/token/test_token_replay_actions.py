"""``scripts/token_replay_actions.py``: action shares and catches per window of a saved replay."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from worldflux.data.replay import Replay
from worldflux.envs import make_vector_env

ROOT = Path(__file__).resolve().parents[3]


def load_script():  # noqa: ANN201
    path = ROOT / "scripts" / "token_replay_actions.py"
    spec = importlib.util.spec_from_file_location("token_replay_actions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_windows_count_what_was_played(tmp_path: Path) -> None:
    envs = make_vector_env({"suite": "embedded", "id": "catch", "rows": 4, "cols": 4}, seed=0)
    replay = Replay(envs.spec, capacity=100)
    step = envs.step(None)
    replay.add(step)
    actions, firsts, rewards = [-1], [bool(step["first"][0])], [float(step["reward"][0])]
    for t in range(39):  # the steps 1-19 follow "left", the steps 20-39 "right"
        actions.append(0 if t < 19 else 2)
        step = envs.step(np.eye(3, dtype=np.float32)[[actions[-1]]])
        replay.add(step)
        firsts.append(bool(step["first"][0]))
        rewards.append(float(step["reward"][0]))
    path = tmp_path / "replay.npz"
    replay.save(path)
    lines = load_script().windows(str(path), 20)
    assert len(lines) == 2
    for line, lo in zip(lines, (0, 20), strict=True):
        kept = [
            a for a, f in zip(actions[lo : lo + 20], firsts[lo : lo + 20], strict=True) if not f
        ]
        shares = np.bincount(kept, minlength=3) / len(kept)
        assert f"actions {shares[0]:.2f} / {shares[1]:.2f} / {shares[2]:.2f}," in line
        assert f"reward per step {np.mean(rewards[lo : lo + 20]):+.3f}," in line
        balls = [r for r in rewards[lo : lo + 20] if r != 0]
        assert f"of {len(balls)}" in line
    assert "actions 1.00 / 0.00 / 0.00" in lines[0] and "actions 0.00 / 0.00 / 1.00" in lines[1]


def test_a_wrapped_replay_is_refused(tmp_path: Path) -> None:
    envs = make_vector_env({"suite": "embedded", "id": "catch", "rows": 4, "cols": 4}, seed=0)
    replay = Replay(envs.spec, capacity=5)
    for _ in range(7):
        replay.add(envs.step(None if _ == 0 else np.eye(3, dtype=np.float32)[[1]]))
    replay.save(tmp_path / "r.npz")
    with pytest.raises(ValueError, match="wrapped around"):
        load_script().windows(str(tmp_path / "r.npz"), 5)
