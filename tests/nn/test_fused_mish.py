"""The fused Mish equals ``F.mish`` in value and gradient, and is what TD-MPC2's layers use."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from worldflux.nn.fused import Mish, mish
from worldflux.nn.layers import activation, normed_mlp


def test_mish_matches_torch_in_value_and_gradient_over_a_wide_range() -> None:
    x = torch.cat([torch.linspace(-60, 60, 4001), torch.randn(5000) * 4])
    x.requires_grad_(True)
    ours, ref = mish(x), F.mish(x)
    assert torch.allclose(ours, ref, rtol=1e-6, atol=1e-6)
    g = torch.randn_like(x)
    (gx,) = torch.autograd.grad(ours, x, g)
    (gr,) = torch.autograd.grad(ref, x, g)
    assert torch.allclose(gx, gr, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # the planner's path (no autograd record) gives the same values
        assert torch.equal(mish(x), ours.detach())


def test_mish_keeps_non_finite_inputs_as_torch_does() -> None:
    x = torch.tensor([float("inf"), float("nan"), -1e30, 1e30])
    ours, ref = mish(x), F.mish(x)
    assert torch.equal(ours.isnan(), ref.isnan())
    assert torch.equal(ours[~ours.isnan()], ref[~ref.isnan()])


def test_mish_does_not_modify_its_input() -> None:
    x = torch.randn(64)
    before = x.clone()
    mish(x)
    assert torch.equal(x, before)


def test_tdmpc2_blocks_use_the_fused_mish() -> None:
    assert isinstance(activation("mish"), Mish)
    mlp = normed_mlp(4, [8], 2)
    assert isinstance(mlp[0].act, Mish)
    assert not any(isinstance(m, torch.nn.Mish) for m in mlp.modules())
