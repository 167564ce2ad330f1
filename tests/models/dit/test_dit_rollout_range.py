"""DiT open-loop rollouts stay in the data range: ``clip_denoised`` clamps the ``x_0`` estimate
(as the reference's ``process_xstart``), and every sample re-enters the context as the latent of a
clipped frame (NWM decodes, clips and re-encodes between steps)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from tests.models.dit.helpers import tiny
from tests.test_contract import make_batch
from worldflux.models.dit.diffusion import GaussianDiffusion, spaced_steps


def _wild(xt: Tensor, ts: Tensor) -> Tensor:
    """A denoiser whose noise estimate puts ``x_0`` far outside ``[-1, 1]``."""
    return torch.cat([-5.0 * torch.ones_like(xt), torch.zeros_like(xt)], 1)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_clip_keeps_samples_in_range_and_is_off_by_default(sampler: str) -> None:
    process = GaussianDiffusion(1000, spaced_steps(1000, 4))
    noise = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    clipped = process.sample(_wild, noise, sampler, torch.Generator().manual_seed(1), clip=True)
    assert clipped.abs().max() <= 1.0
    free = process.sample(_wild, noise, sampler, torch.Generator().manual_seed(1), clip=False)
    assert free.abs().max() > 10.0  # the reference's default for NWM latents: no clamp
    t = torch.full((2,), 3, dtype=torch.long)
    p = process.p_mean_variance(_wild(noise, t), noise, t, clip=True)
    assert p["pred_xstart"].abs().max() <= 1.0


def _perturbed(**overrides: Any) -> Any:
    torch.manual_seed(0)
    model = tiny(**overrides)
    with torch.no_grad():  # leave adaLN-Zero's start, whose output is exactly zero
        for p in model.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.ema.target.load_state_dict(model.denoiser.state_dict())
    return model.eval()


def _rollout(model: Any, sampler: str = "ddpm") -> Tensor:
    model.config.sampler = sampler
    window = torch.rand(3, 4, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    actions = torch.rand(3, 8, 2, generator=torch.Generator().manual_seed(3)) * 2 - 1
    gen = torch.Generator().manual_seed(4)
    return model.rollout(window, actions, generator=gen)["latent"]


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_untrained_rollout_of_eight_steps_stays_in_range(sampler: str) -> None:
    z = _rollout(_perturbed(), sampler)
    assert z.shape == (3, 8, 3, 16, 16)
    assert torch.isfinite(z).all() and z.abs().max() <= 1.0
    assert z.std() > 0.05  # not a constant: the model still samples


def test_briefly_trained_rollout_stays_in_range() -> None:
    model = _perturbed().train()
    opt = torch.optim.AdamW(model.denoiser.parameters(), lr=1e-3)
    batch = make_batch(model.config, b=4, t=6)
    for _ in range(10):
        opt.zero_grad()
        model.loss(batch).total.backward()
        opt.step()
        model.after_phase("denoiser")
    z = _rollout(model.eval())
    assert torch.isfinite(z).all() and z.abs().max() <= 1.0


def test_samples_reenter_the_context_as_clipped_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _perturbed(clip_denoised=False)  # unclipped samples leave [-1, 1] ...
    windows: list[Tensor] = []
    predict = model.predict_next

    def spy(window: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        windows.append(window.clone())
        return predict(window, *args, **kwargs)

    monkeypatch.setattr(model, "predict_next", spy)
    z = _rollout(model)
    assert z.abs().max() > 1.0
    # ... but the context never holds one: each re-enters as the latent of its clipped frame
    assert all(w.abs().max() <= 1.0 for w in windows)
    torch.testing.assert_close(windows[1][:, -1], z[:, 0].clamp(-1, 1))
