"""DiT training: gradients reach every part of the denoiser, the EMA copy follows, windows across
an episode start are left out of the loss, and sampling and rollouts are reproducible."""

from __future__ import annotations

import torch

from tests.models.dit.helpers import tiny
from tests.test_contract import make_batch


def test_gradient_reaches_every_denoiser_parameter() -> None:
    torch.manual_seed(0)
    model = tiny()
    with torch.no_grad():  # leave adaLN-Zero's start, where most gradients are exactly zero
        for p in model.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
    out = model.loss(make_batch(model.config, t=6))
    out.total.backward()
    dead = [n for n, p in model.denoiser.named_parameters() if p.grad is None or not p.grad.any()]
    assert not dead, dead
    assert set(out.components) == {"mse", "vb"}


def test_ema_follows_the_denoiser() -> None:
    model = tiny(ema_decay=0.5)
    with torch.no_grad():
        for p in model.denoiser.parameters():
            p.add_(1.0)
    before = [p.clone() for p in model.ema.target.parameters()]
    model.after_phase("denoiser")
    for b, e, s in zip(before, model.ema.target.parameters(), model.denoiser.parameters()):
        torch.testing.assert_close(e, 0.5 * b + 0.5 * s)


def test_windows_across_an_episode_start_are_masked() -> None:
    model = tiny()
    batch = make_batch(model.config, b=1, t=7)
    batch["first"][0, 5] = True  # windows ending at 5 and 6 contain the episode start
    *_, valid = model._windows(batch)
    assert valid.tolist() == [1.0, 0.0, 0.0]


def test_rollout_shapes_and_generator_reproducibility() -> None:
    model = tiny().eval()
    batch = make_batch(model.config, b=2, t=5)
    window = model.encode(batch["obs"][:, :4])
    a = batch["action"][:, :3]
    r1 = model.rollout(window, a, num_steps=2, generator=torch.Generator().manual_seed(0))
    r2 = model.rollout(window, a, num_steps=2, generator=torch.Generator().manual_seed(0))
    assert r1["latent"].shape == (2, 3, 3, 16, 16) and torch.equal(r1["latent"], r2["latent"])
