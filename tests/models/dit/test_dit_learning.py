"""DiT learns (slow; 17-30 min on a busy 2-core CPU, ~5 of them evaluating): docs/learning.md.

``python -m worldflux.train model=dit/ci env=reach_blob`` (Reach with the point drawn as a
Gaussian blob at its exact position) with random-action data, 9,974 updates: the diffusion loss
falls; open-loop predictions over 8 steps on 32 held-out episodes (NWM's 250 DDPM steps a frame)
beat copying the last frame (PSNR and SSIM); CEM toward the goal frame reaches the goal more often
than random actions on 20 episodes. Measured on 1 December 2026: PSNR 27.02 dB vs 21.35, SSIM
0.811 vs 0.726; CEM 16 / 20 vs random 3 / 20.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from worldflux import create_world_model
from worldflux.envs.embedded import Reach
from worldflux.models.dit.evaluation import goal_reaching, open_loop, random_episodes

ROOT = Path(__file__).resolve().parents[3]
COMMAND = [
    "model=dit/ci",
    "env=reach_blob",
    "data.batch_size=8",
    "data.batch_length=8",
    "data.train_ratio=112",
    "data.prefill=500",
    "data.env_steps=6200",
    "eval.every=null",
    "eval.final=false",
    "logger=csv",
    "device=cpu",
    "threads=1",
    "trainer.enable_progress_bar=false",
]


BLOB = 0.3  # conf/env/reach_blob.yaml


def _env() -> Reach:
    return Reach(obs="image", size=16, blob=BLOB)


@pytest.mark.slow
def test_dit_ci_learns_reach_image(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "worldflux.train", *COMMAND, f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=7200,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    with open(next(tmp_path.rglob("metrics.csv"))) as fh:
        rows = list(csv.DictReader(fh))
    losses = [float(r["train/loss/total"]) for r in rows if r.get("train/loss/total")]
    k = max(1, len(losses) // 5)
    assert sum(losses[-k:]) / k < 0.5 * sum(losses[:k]) / k, "the diffusion loss did not fall"

    torch.set_num_threads(1)  # as the training's threads=1: two threads thrash on a busy 2-core CPU
    torch.manual_seed(0)
    model = create_world_model(str(tmp_path / "export")).eval()
    frames, actions = random_episodes(_env(), 32, 12, seed=10_000)
    m = open_loop(model, frames, actions, horizon=8, num_steps=250)  # NWM's 250 DDPM steps
    print("open loop:", m)
    assert m["psnr_model"] > m["psnr_copy"] and m["ssim_model"] > m["ssim_copy"], m

    cem = goal_reaching(model, _env, 20, seed=10_000, planner=True)
    rnd = goal_reaching(model, _env, 20, seed=10_000, planner=False)
    print("goal reaching: CEM", cem, "random", rnd)
    assert cem["success"] > rnd["success"], (cem, rnd)
