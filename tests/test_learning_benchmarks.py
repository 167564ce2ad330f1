"""Shortened learning benchmarks (``scripts/bench_learning.py``, ``docs/learning.md``).

Each test trains through ``python -m worldflux.train`` on a real gymnasium environment (extra
``worldflux[gym]``) and checks that the agent's returns at the end beat a uniformly random policy
by a clear margin. Slow: a few minutes each on one CPU thread.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gymnasium")

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_learning", ROOT / "scripts/bench_learning.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _final_return(result: dict, last_steps: int) -> float:
    """Mean return of the episodes that ended in the last ``last_steps`` env steps."""
    start = result["env_steps"] - last_steps
    returns = [r for step, r in result["episodes"] if step > start]
    assert returns, f"no episode ended after env step {start}: {result['episodes']}"
    return float(np.mean(returns))


@pytest.mark.slow
def test_tdmpc2_learns_pendulum(tmp_path: Path) -> None:
    """TD-MPC2 1M, batch 128 (2 updates per env step), planner shrunk 4x: random about -1200."""
    result = _bench().run(
        [
            "experiment=tdmpc2_pendulum",
            "data.env_steps=2600",
            "data.batch_size=128",
            "model.num_samples=128",
            "model.num_elites=16",
            "model.num_pi_trajs=8",
            "model.iterations=4",
        ],
        tmp_path,
        rows=5,
        random_episodes=20,
    )
    random_mean = result["random"][0]
    final = _final_return(result, 600)
    assert final > random_mean + 500, (final, random_mean, result["curve"])


@pytest.mark.slow
def test_dreamerv3_learns_cartpole(tmp_path: Path) -> None:
    """DreamerV3 tiny ci preset, batch 16 x 32: random balances about 22 steps, learned > 200."""
    result = _bench().run(
        [
            "experiment=dreamer_cartpole",
            "model=dreamer/ci",
            "model.lr=1e-3",
            "data.batch_length=32",
            "data.train_ratio=32",
            "data.env_steps=10000",
        ],
        tmp_path,
        rows=5,
        random_episodes=20,
    )
    random_mean = result["random"][0]
    final = _final_return(result, 2000)
    assert final > random_mean + 100, (final, random_mean, result["curve"])
