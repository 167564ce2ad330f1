"""GameGAN learns Catch through the training entry point (slow; docs/learning.md has the run).

Criterion of the issue: action-conditioned open-loop rollouts beat the copy-last-frame baseline
(PSNR over 10 steps) on held-out episodes, and respond to the action (a rollout under all-left is
closer to the real all-left future than to the all-right one, and vice versa); both losses stay
finite.
"""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from worldflux import create_world_model
from worldflux.envs.embedded import Catch
from worldflux.models.gan.evaluate import collect, open_loop_scores

ROOT = Path(__file__).resolve().parents[3]

COMMAND = [
    "model=gan/ci",
    "env=catch",
    "env.size=16",
    "data.batch_size=16",
    "data.batch_length=8",
    "data.prefill=1000",
    "data.env_steps=1800",  # 200 updates: (1800 - 1000) x 32 / (16 x 8)
    "data.train_ratio=32",
    "model.lr=1e-3",
    "model.lr_d=1e-3",
    "device=cpu",
    "threads=1",
    "seed=0",
    "logger=csv",
    "eval.every=null",
    "trainer.enable_progress_bar=false",
]


@pytest.mark.slow
def test_gan_ci_learns_catch_dynamics(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "worldflux.train", *COMMAND, f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=7200,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    with open(next(tmp_path.rglob("metrics.csv"))) as fh:
        rows = list(csv.DictReader(fh))
    for key in ("train/loss/generator", "train/loss/discriminator"):
        values = [float(r[key]) for r in rows if r.get(key)]
        assert values and all(math.isfinite(v) for v in values), key
    model = create_world_model(str(tmp_path / "checkpoints" / "last.ckpt"))
    episodes = collect(Catch(size=16, seed=10_000), 64, 4, 10, (0, 2), seed=10_001)
    scores = open_loop_scores(model, episodes, (0, 2))
    assert scores["psnr_model"] > scores["psnr_copy_last"], scores
    assert scores["response_a_db"] > 0 and scores["response_b_db"] > 0, scores
