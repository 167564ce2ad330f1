"""Layers, conv stacks, distributions and EMA of ``worldflux.nn``."""

from __future__ import annotations

import math

import pytest
import torch

from worldflux.errors import ConfigError, ShapeError
from worldflux.nn.conv import ShiftAug, UpConv2d, conv_stack, upconv_stack
from worldflux.nn.distributions import (
    Categorical,
    sample_onehot,
    squashed_gaussian_sample,
    symexp_bins,
    symlog_bins,
    symmetric_expectation,
    twohot_nll,
    unimix_logprobs,
)
from worldflux.nn.ema import EMA, ema_update
from worldflux.nn.functional import twohot
from worldflux.nn.layers import (
    MLP,
    Dense,
    NormAct,
    RMSNorm,
    SimNorm,
    activation,
    norm_layer,
    normed_mlp,
)


def test_rms_norm_and_fused_norm_act_match_the_composite() -> None:
    x = torch.randn(5, 8, requires_grad=True)
    norm = RMSNorm(8)
    ref = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-4)
    assert torch.allclose(norm(x), ref, atol=1e-6)
    fused = NormAct("rms", 8, "silu")
    assert fused.fused
    assert torch.allclose(fused(x), torch.nn.functional.silu(norm(x)), atol=1e-6)
    with pytest.raises(ConfigError, match="unknown norm"):
        norm_layer("batch", 8)
    with pytest.raises(ConfigError, match="unknown activation"):
        activation("swish")


def test_dense_mlp_and_normed_mlp_parameter_counts() -> None:
    assert sum(p.numel() for p in Dense(4, 6).parameters()) == 4 * 6 + 6 + 6  # scale, no shift
    mlp = MLP(4, layers=2, units=6)
    assert mlp.out_dim == 6 and sum(p.numel() for p in mlp.parameters()) == 36 + 48
    # TD-MPC2: NormedLinear(4->8) + Linear(8->3); LayerNorm has weight and bias
    net = normed_mlp(4, [8], 3)
    assert sum(p.numel() for p in net.parameters()) == (4 * 8 + 8 + 16) + (8 * 3 + 3)


def test_simnorm_groups_sum_to_one() -> None:
    out = SimNorm(4)(torch.randn(3, 12))
    assert torch.allclose(out.view(3, 3, 4).sum(-1), torch.ones(3, 3))


def test_conv_stacks_shapes_and_strided_parameters() -> None:
    pooled = conv_stack(3, [4, 8], kernel=5)
    strided = conv_stack(3, [4, 8], kernel=5, strided=True)
    count = sum(p.numel() for p in pooled.parameters())
    assert count == sum(p.numel() for p in strided.parameters())
    assert count == (3 * 4 * 25 + 4 + 4) + (4 * 8 * 25 + 8 + 8)
    x = torch.randn(2, 3, 16, 16)
    assert pooled(x).shape == strided(x).shape == (2, 8, 4, 4)
    up = upconv_stack(8, [4, 2], kernel=3)
    assert up(torch.randn(2, 8, 4, 4)).shape == (2, 2, 16, 16)


def test_upconv_equals_upsample_then_conv() -> None:
    layer = UpConv2d(3, 2, 3)
    x = torch.randn(1, 3, 5, 5)
    up = torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
    ref = torch.nn.functional.conv2d(up, layer.weight, layer.bias, padding=1)
    assert torch.allclose(layer(x), ref, atol=1e-5)


def test_shift_aug_keeps_shape_and_needs_square_images() -> None:
    assert ShiftAug(2)(torch.rand(2, 3, 8, 8)).shape == (2, 3, 8, 8)
    with pytest.raises(ShapeError, match="square"):
        ShiftAug(2)(torch.rand(2, 3, 8, 6))


def test_twohot_bins_of_both_families() -> None:
    bins = symexp_bins(255)
    assert bins.numel() == 255 and bins[127] == 0 and torch.equal(bins, -bins.flip(0))
    assert symmetric_expectation(torch.zeros(255), bins) == 0  # uniform predicts exactly zero
    tdmpc = symlog_bins(101)
    assert tdmpc.numel() == 101 and tdmpc[0] == -10 and tdmpc[-1] == 10
    target = torch.tensor([0.3, -2.7, 50.0, 1e9])
    logprobs = torch.log_softmax(torch.randn(4, 101), -1)
    dense = -(twohot(target, tdmpc) * logprobs).sum(-1)
    assert torch.allclose(twohot_nll(logprobs, target, tdmpc), dense, atol=1e-5)


def test_unimix_and_straight_through_sampling() -> None:
    logits = torch.tensor([[10.0, -10.0, -10.0, -10.0]], requires_grad=True)
    probs = unimix_logprobs(logits, 0.01).exp()
    assert probs.min() >= 0.01 / 4 - 1e-7 and torch.allclose(probs.sum(), torch.tensor(1.0))
    sample = sample_onehot(unimix_logprobs(logits, 0.01))
    assert sample.detach().sum() == 1.0
    (sample * torch.arange(4.0)).sum().backward()  # straight-through: gradient reaches logits
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    dist = Categorical(torch.zeros(2, 5), unimix=0.01)
    assert torch.allclose(dist.entropy(), torch.full((2,), math.log(5)), atol=1e-6)


def test_squashed_gaussian_sample() -> None:
    out = squashed_gaussian_sample(torch.zeros(6, 3), torch.full((6, 3), 1.0))
    assert out["action"].abs().max() < 1 and out["entropy"].shape == (6,)
    mask = torch.tensor([[1.0, 1.0, 0.0]]).expand(6, 3)
    masked = squashed_gaussian_sample(torch.ones(6, 3), torch.zeros(6, 3), action_mask=mask)
    assert torch.equal(masked["action"][:, 2], torch.zeros(6))


def test_ema_rate_every_and_state() -> None:
    source = torch.nn.Linear(2, 2)
    ema = EMA(source, rate=0.5, every=2)
    assert all(not p.requires_grad for p in ema.target.parameters())
    start = ema.target.weight.clone()
    with torch.no_grad():
        source.weight.add_(2.0)
    assert ema.update() and torch.allclose(ema.target.weight, start + 1.0)
    assert not ema.update() and torch.allclose(ema.target.weight, start + 1.0)
    assert ema.update() and torch.allclose(ema.target.weight, start + 1.5)
    assert {"target.weight", "target.bias", "count"} <= set(ema.state_dict())
    assert not ema.train().target.training
    with pytest.raises(ConfigError, match="rate"):
        EMA(source, rate=0.0)
    target = torch.nn.Linear(2, 2)
    ema_update(target, source, 1.0)
    assert torch.equal(target.weight, source.weight)
