"""Learning check of the diffusion family (slow): DIAMOND ``diffusion:ci`` on 16x16 Catch pixels
through ``python -m worldflux.train``; the command and numbers are in docs/learning.md."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

COMMAND = [
    "model=diffusion/ci",
    "env=catch",
    "env.size=16",
    "data.batch_size=16",
    "data.train_ratio=96",
    "data.prefill=500",
    "data.env_steps=1500",
    "+model.phases.rew_end_model.every=2",
    "+model.phases.actor_critic.every=2",
    "device=cpu",
    "threads=1",
    "logger=csv",
    "eval.every=null",
    "export=false",
    "trainer.enable_progress_bar=false",
]
#: Mean return of a uniformly random policy on Catch (4 balls, 5 columns): 4 * (1/5 - 4/5).
RANDOM_RETURN = -2.4


@pytest.mark.slow
def test_diffusion_learns_catch(tmp_path: Path) -> None:
    import torch

    from worldflux import create_world_model
    from worldflux.models.diffusion.evaluate import catch_sequences, open_loop_psnr

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
    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    losses = [float(r["train/loss/denoising"]) for r in rows if r.get("train/loss/denoising")]
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, "denoising loss did not fall"
    model = create_world_model(str(tmp_path / "checkpoints" / "last.ckpt"))
    scores = open_loop_psnr(model, catch_sequences(32, 14), context=4, horizon=10)
    assert scores["model"] > scores["copy_last"], scores
    returns = [float(r["env/return_mean20"]) for r in rows if r.get("env/return_mean20")]
    assert returns[-1] > RANDOM_RETURN + 0.5, returns[-1]
    assert torch.isfinite(torch.tensor(losses)).all()
