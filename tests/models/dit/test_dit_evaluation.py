"""The DiT evaluation tools: the context probe tells a context-blind denoiser from one that reads
its context, and the open-loop metrics score a perfect predictor above copying the last frame."""

from __future__ import annotations

import torch

from tests.models.dit.helpers import tiny
from worldflux.envs.embedded import Reach
from worldflux.models.dit.evaluation import context_probe, psnr, random_episodes, ssim


def _episodes() -> tuple[torch.Tensor, torch.Tensor]:
    return random_episodes(Reach(obs="image", size=16, blob=0.3), 4, 5, seed=3)


def test_context_probe_sees_no_context_at_adaln_zero_start() -> None:
    torch.manual_seed(0)
    model = tiny().eval()  # adaLN-Zero: every block is the identity, the context is unused
    frames, actions = _episodes()
    rows = context_probe(model, frames, actions, (200, 600))
    assert [r["t"] for r in rows] == [200.0, 600.0]
    for r in rows:
        assert r["context"] == r["shuffled"] and r["copy_last"] > 0


def test_context_probe_sees_the_context_once_the_blocks_are_open() -> None:
    torch.manual_seed(0)
    model = tiny().eval()
    with torch.no_grad():
        for p in model.ema.target.parameters():
            p.add_(0.1 * torch.randn_like(p))
    frames, actions = _episodes()
    rows = context_probe(model, frames, actions, (200,))
    assert abs(rows[0]["context"] - rows[0]["shuffled"]) > 1e-6


def test_metrics_rank_the_true_frame_above_a_shifted_one() -> None:
    frames, _ = _episodes()
    target = frames[:, 4].float() / 255
    shifted = torch.roll(target, 3, dims=-1)
    assert psnr(target, target).min() > psnr(shifted, target).max()
    assert torch.allclose(ssim(target, target), torch.ones(4), atol=1e-5)
    assert (ssim(shifted, target) < 0.99).all()
