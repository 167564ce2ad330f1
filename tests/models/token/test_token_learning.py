"""IRIS (family ``token``) learns on the embedded Catch pixels (slow: tens of minutes on a CPU).

The criterion of issue 11: through ``python -m worldflux.train model=token/ci`` on 16x16 Catch,
the tokenizer's reconstruction error falls, the world model's next-token accuracy rises well above
chance (1 / vocab_size), and the evaluation return beats a uniformly random policy clearly (the
random prefill of the recipe scores about -2.2 over its ~18 episodes; docs/learning.md).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
#: The recipe of docs/learning.md (section "token (IRIS) on Catch pixels").
RECIPE = [
    "model=token/ci",
    "env=catch",
    "env.size=16",
    "model.tokenizer_batch_size=32",
    "model.wm_batch_size=16",
    "model.ac_batch_size=16",
    "model.max_blocks=8",
    "model.batch_length=9",
    "model.burn_in=4",
    "model.imagine_horizon=8",
    "model.lr=1e-3",
    "model.ac_start=1500",
    "model.batch_size=16",
    "data.train_ratio=72",
    "data.prefill=500",
    "data.env_steps=3500",
    "eval.every=250",
    "eval.episodes=10",
    "eval.video=false",
]
RANDOM_RETURN = -2.2  # mean of the 500 random prefill steps (4 balls, 28-step episodes)


def _column(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key)]


@pytest.mark.slow
def test_token_learns_catch_pixels(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "worldflux.train", *RECIPE, "logger=csv", "device=cpu",
        "threads=1", "export=false", "trainer.enable_progress_bar=false",
        f"hydra.run.dir={tmp_path}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    with open(tmp_path / "csv" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    rec = _column(rows, "train/loss/reconstruction")
    acc = _column(rows, "train/world_model/obs_accuracy")
    ret = _column(rows, "eval/return")
    assert sum(rec[-5:]) / 5 < 0.5 * sum(rec[:3]) / 3, "reconstruction error did not fall"
    assert sum(acc[-5:]) / 5 > 10 / 32, "next-token accuracy is not well above chance (1/32)"
    assert max(ret[-2:]) > RANDOM_RETURN + 1.0, "the agent does not beat a random policy"
