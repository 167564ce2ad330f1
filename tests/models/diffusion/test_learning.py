"""Learning check of the diffusion family (slow): DIAMOND ``diffusion:ci`` on 16x16 Catch pixels
through ``python -m worldflux.train``; the command and numbers are in docs/learning.md.

The three criteria of issue 12: the denoising loss falls, open-loop predictions over 10 steps beat
repeating the last frame on held-out episodes, and the final evaluation return (50 episodes)
beats a uniformly random policy. The numbers are printed (``pytest -s``).

The command runs at the default seed 0 (training on CPU at one thread is deterministic). With the
reference's reward/termination LSTM width (512) and sequence length (horizon + n) it passes at
seed 0 (+4.00 over 50 episodes) and seed 1 (+2.24), where without them seed 1 failed (-1.88:
its 16-unit reward head was still on its plateau when the actor-critic started; docs/learning.md,
diffusion items 10-12), and at seed 2 (+3.96; +3.92 without them).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

#: 1,000 random prefill steps, then one update per environment step: 800 updates of the denoiser
#: and the reward/termination model alone (the reference's first epoch also trains the world model
#: before the actor-critic), then 900 updates of all three phases, the actor-critic imagining
#: 8-step rollouts from 64 initial conditions at lr 1e-3 with the reference's LSTM width of 512
#: (diffusion:ci's own 16 units do not learn Catch even on the true dynamics, docs/learning.md)
#: and entropy weight 0.01 (the reference's 0.001 lets the policy collapse onto one action at
#: lr 1e-3, ten times the reference's; docs/learning.md). The reward/termination model has the
#: reference's LSTM width of 512 (the preset's 16 units stay on a base-rate plateau for up to
#: 1,000 updates at some seeds) and its sequence length horizon + n = 12, the length it reads in
#: imagination (docs/learning.md, diffusion item 12).
COMMAND = [
    "model=diffusion/ci",
    "env=catch",
    "env.size=16",
    "data.batch_size=16",
    "data.train_ratio=96",
    "data.prefill=1000",
    "data.env_steps=2700",
    "+model.phases.actor_critic.start_updates=800",
    "+model.phases.actor_critic.batch_size=64",
    "model.phases.actor_critic.optimizer.lr=1e-3",
    "model.actor_critic.lstm_dim=512",
    "model.horizon=8",
    "model.weight_entropy_loss=0.01",
    "model.rew_end_model.lstm_dim=512",
    "model.rew_end_batch_length=12",
    "device=cpu",
    "threads=1",
    "logger=csv",
    "eval.every=null",
    "eval.episodes=50",
    "export=false",
    "trainer.enable_progress_bar=false",
]
#: Mean return of a uniformly random policy on Catch (4 balls, 5 columns): 4 * (1/5 - 4/5).
RANDOM_RETURN = -2.4
#: Margin over random: a random policy's 50-episode mean has a standard error of about 0.23.
MARGIN = 0.8


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
    assert torch.isfinite(torch.tensor(losses)).all()
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    model = create_world_model(str(tmp_path / "checkpoints" / "last.ckpt"))
    scores = open_loop_psnr(model, catch_sequences(32, 14), context=4, horizon=10)
    returns = [float(r["eval/return"]) for r in rows if r.get("eval/return")]
    print(f"denoising loss {first:.3f} -> {last:.3f}; PSNR {scores}; eval return {returns}")
    assert last < 0.5 * first, "denoising loss did not fall"
    assert scores["model"] > scores["copy_last"], scores
    assert returns and returns[-1] > RANDOM_RETURN + MARGIN, returns
