"""The open-loop evaluation's metrics and baselines (fast; the learning run is in test_gan_learning)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from worldflux import get_config
from worldflux.envs.embedded import Catch
from worldflux.models.gan.evaluate import SCORES, collect, open_loop_scores, psnr, ssim
from worldflux.models.gan.module import GameGAN


def test_psnr_and_ssim_on_unit_images() -> None:
    gen = torch.Generator().manual_seed(0)
    truth = torch.rand(2, 3, 3, 16, 16, generator=gen)
    noisy = (truth + 0.1 * torch.randn(truth.shape, generator=gen)).clamp(0, 1)
    assert torch.allclose(ssim(truth, truth), torch.ones(2, 3))
    assert psnr(truth, truth).min() > 90
    mse = (noisy - truth).pow(2).mean((-3, -2, -1))
    assert torch.allclose(psnr(noisy, truth), -10 * torch.log10(mse), atol=1e-4)
    # per frame, the same numbers as torchmetrics on [0, 1] images (data range 1, 11-px window)
    want = structural_similarity_index_measure(
        noisy[0], truth[0], data_range=1.0, kernel_size=11, reduction="none"
    )
    assert torch.allclose(ssim(noisy, truth)[0], want)
    assert (ssim(noisy, truth) < 0.99).all()
    with pytest.raises((RuntimeError, ValueError)):
        ssim(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 8, 8))


def test_copy_last_frame_baseline_and_held_out_episodes() -> None:
    episodes = collect(Catch(size=16, seed=10_000), 4, 4, 10, (0, 2), seed=10_001)
    assert len(episodes) == 4
    e = episodes[0]
    assert e.context.shape == (4, 3, 16, 16) and e.future.shape == (10, 3, 16, 16)
    assert e.actions.shape == (14,) and e.context.dtype == np.uint8
    # all-left and all-right futures differ (the paddle moves) in every episode
    assert all((x.future_a != x.future_b).any() for x in episodes)
    torch.manual_seed(0)
    scores = open_loop_scores(
        GameGAN({**get_config("gan:ci").to_dict(), "action_dim": 3}), episodes, (0, 2)
    )
    assert tuple(scores) == SCORES
    assert all(np.isfinite(v) for v in scores.values())
    assert -1.0 < scores["ssim_copy_last"] < 1.0 and scores["psnr_copy_last"] > 5.0
