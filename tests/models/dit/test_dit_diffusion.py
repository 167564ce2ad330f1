"""DiT diffusion: NWM's schedule and spacing, the improved-DDPM loss on hand-checkable cases, and
the samplers."""

from __future__ import annotations

import math

import numpy as np
import torch

from worldflux.models.dit.diffusion import GaussianDiffusion, linear_betas, spaced_steps


def test_linear_schedule_and_spacing() -> None:
    betas = linear_betas(1000)
    assert betas[0] == 1e-4 and math.isclose(betas[-1], 0.02)
    steps = spaced_steps(1000, 250)
    assert len(steps) == 250 and steps[0] == 0 and steps[-1] == 999
    assert spaced_steps(1000, 1000) == list(range(1000))
    spaced = GaussianDiffusion(1000, spaced_steps(1000, 10))
    base = GaussianDiffusion(1000)
    # a respaced process keeps the base process's alpha-bars at its steps
    np.testing.assert_allclose(spaced.alphas_cumprod, base.alphas_cumprod[spaced.timestep_map])


def test_perfect_noise_and_posterior_variance_give_zero_loss() -> None:
    torch.manual_seed(0)
    diff = GaussianDiffusion(1000)
    x0, noise = torch.randn(4, 2, 4, 4), torch.randn(4, 2, 4, 4)
    t = torch.tensor([1, 10, 500, 999])

    def oracle(xt: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        # predicts the true noise, and v = -1: the (clipped) posterior variance
        return torch.cat([noise, -torch.ones_like(noise)], 1)

    terms = diff.training_losses(oracle, x0, t, noise)
    torch.testing.assert_close(terms["mse"], torch.zeros(4), atol=1e-10, rtol=0)
    torch.testing.assert_close(terms["vb"], torch.zeros(4), atol=1e-4, rtol=0)


def test_mse_is_the_mean_squared_noise_error() -> None:
    diff = GaussianDiffusion(1000)
    x0, noise = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)

    def zero(xt: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        return torch.zeros(2, 2, 2, 2)

    terms = diff.training_losses(zero, x0, torch.tensor([5, 700]), noise)
    torch.testing.assert_close(terms["mse"], torch.ones(2))
    assert torch.equal(terms["loss"], terms["mse"] + terms["vb"])


def test_ddim_with_the_true_noise_recovers_x0() -> None:
    torch.manual_seed(0)
    x0 = torch.randn(2, 3, 4, 4)
    process = GaussianDiffusion(1000, spaced_steps(1000, 5))
    noise = torch.randn_like(x0)
    t = torch.full((2,), 4, dtype=torch.long)
    xt = process.q_sample(x0, t, noise)
    eps = (xt - process.sqrt_alphas_cumprod[4] * x0) / process.sqrt_one_minus_alphas_cumprod[4]

    def oracle(x: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        # the noise that takes x back to x0 at the current step
        i = int((process.timestep_map == int(ts[0])).nonzero()[0][0])
        e = (x - process.sqrt_alphas_cumprod[i] * x0) / process.sqrt_one_minus_alphas_cumprod[i]
        return torch.cat([e.float(), torch.zeros_like(x)], 1)

    assert torch.allclose(eps, oracle(xt, torch.tensor([999, 999]))[:, :3], atol=1e-4)
    out = process.sample(oracle, xt, "ddim")
    torch.testing.assert_close(out, x0, atol=1e-3, rtol=0)
