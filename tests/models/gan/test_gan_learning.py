"""GameGAN learns Catch through the training entry point (slow; docs/learning.md has the run).

Criterion of the issue: action-conditioned open-loop rollouts beat the copy-last-frame baseline
in PSNR and in SSIM over 10 steps on 64 held-out starts, and respond to the action (a rollout
under all-left is closer to the real all-left future than to the all-right one, and vice versa);
both losses stay finite and balanced: neither runs away nor collapses (the mean of the last
quarter of the run lies between a quarter of and the first logged value), and, stricter, the
discriminator does not win (its single-frame hinge loss above half its chance value 2 and a real /
generated logit margin below 1; not met, an xfail with the measured values).

Recipe (docs/learning.md): ``gan:ci`` with ``hidden_dim`` 128 (the frame code of 32 left the
encoder 4 channels) and the frame reconstruction weighted 0.8, the reference's 0.05 per pixel of
its 64x64 frames at these 16x16 frames (the term is a sum over pixels).
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
    "data.env_steps=3400",  # 600 updates: (3400 - 1000) x 32 / (16 x 8)
    "data.train_ratio=32",
    "model.lr=1e-3",
    "model.lr_d=1e-3",
    "model.hidden_dim=128",
    "model.recon_loss_multiplier=0.8",
    "device=cpu",
    "threads=1",
    "seed=0",
    "logger=csv",
    "eval.every=null",
    "trainer.enable_progress_bar=false",
    "callbacks.checkpoint.every_n_updates=100",  # update-*.ckpt for the table over updates
    "callbacks.checkpoint.keep_last=10",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, str]]]:
    """One training run through the entry point: its directory and its logged update rows."""
    out = tmp_path_factory.mktemp("gan_catch")
    run = subprocess.run(
        [sys.executable, "-m", "worldflux.train", *COMMAND, f"hydra.run.dir={out}"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=7200,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    with open(next(out.rglob("metrics.csv"))) as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("train/loss/generator")]
    assert len(rows) >= 8, len(rows)
    return out, rows


def _late_mean(rows: list[dict[str, str]], key: str) -> float:
    late = rows[-len(rows) // 4 :]
    return sum(float(r[key]) for r in late) / len(late)


@pytest.mark.slow
def test_gan_ci_rollouts_beat_copy_last_and_follow_actions(
    trained: tuple[Path, list[dict[str, str]]],
) -> None:
    out, rows = trained
    for key in ("train/loss/generator", "train/loss/discriminator"):
        values = [float(r[key]) for r in rows]
        assert all(math.isfinite(v) for v in values), key
        # neither loss runs away or collapses: last quarter within [1/4, 1] of the first value
        assert values[0] / 4 < _late_mean(rows, key) <= values[0], (key, values[0])
    model = create_world_model(str(out / "checkpoints" / "last.ckpt"))
    episodes = collect(Catch(size=16, seed=10_000), 64, 4, 10, (0, 2), seed=10_001)
    scores = open_loop_scores(model, episodes, (0, 2))
    assert scores["psnr_model"] > scores["psnr_copy_last"], scores
    assert scores["ssim_model"] > scores["ssim_copy_last"], scores
    assert scores["response_a_db"] > 0 and scores["response_b_db"] > 0, scores


@pytest.mark.slow
@pytest.mark.xfail(
    strict=False,
    reason="measured 2026-12-01: over the last quarter of the 600 updates the discriminator "
    "separates real from generated single frames (frame hinge 0.16 of chance 2.0, mean logit "
    "margin 2.4), although the generator's losses keep falling and its rollouts beat copy-last",
)
def test_gan_ci_discriminator_does_not_win(trained: tuple[Path, list[dict[str, str]]]) -> None:
    _, rows = trained
    hinge = _late_mean(rows, "train/loss/d_real_single_frame") + _late_mean(
        rows, "train/loss/d_fake_single_frame"
    )
    margin = _late_mean(rows, "train/gan/d_real_logit") - _late_mean(rows, "train/gan/d_fake_logit")
    assert hinge > 1.0 and abs(margin) < 1.0, (hinge, margin)
