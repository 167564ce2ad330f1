"""TD-MPC2 loss pieces: two-hot regression, the policy prior's entropy forms, the running scale
and the discount heuristic."""

from __future__ import annotations

import math

import pytest
import torch

from worldflux.models.tdmpc2.config import discount_from_episode_length
from worldflux.models.tdmpc2.losses import (
    policy_sample,
    soft_ce,
    two_hot_bins,
    two_hot_value,
)
from worldflux.nn.functional import symlog, twohot
from worldflux.nn.scale import PercentileScale


def test_two_hot_round_trip() -> None:
    bins = two_hot_bins(101, -10, 10)
    target = torch.tensor([-300.0, -2.5, 0.0, 0.37, 7.0, 1000.0])
    code = twohot(symlog(target), bins)
    assert torch.all((code > 0).sum(-1) <= 2)
    decoded = two_hot_value(torch.log(code.clamp(min=1e-30)), bins)
    torch.testing.assert_close(decoded, target, rtol=1e-4, atol=1e-4)


def test_soft_ce_is_minimal_at_the_target_code() -> None:
    bins = two_hot_bins(101, -10, 10)
    target = torch.tensor([3.0])
    best = torch.log(twohot(symlog(target), bins).clamp(min=1e-30))
    other = best.roll(3, -1)
    assert soft_ce(best, target, bins) < soft_ce(other, target, bins)
    # clipped to the support: a huge target costs like the edge value
    huge = torch.tensor([1e9])
    torch.testing.assert_close(
        soft_ce(best, huge, bins), soft_ce(best, torch.tensor([math.expm1(10.0)]), bins)
    )


def test_scaled_entropy_is_the_scaled_gaussian_likelihood() -> None:
    torch.manual_seed(0)
    mean, log_std = torch.randn(64, 6), torch.rand(64, 6) - 2
    torch.manual_seed(1)
    out = policy_sample(mean, log_std)
    torch.manual_seed(1)
    eps = torch.randn(64, 6)
    gauss = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    torch.testing.assert_close(out["scaled_entropy"], -6 * gauss, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out["action"], torch.tanh(mean + eps * log_std.exp()))
    assert out["action"].abs().max() < 1


def test_legacy_entropy_includes_the_tanh_correction() -> None:
    mean, log_std = torch.randn(32, 4), torch.rand(32, 4) - 1
    torch.manual_seed(2)
    out = policy_sample(mean, log_std, form="legacy")
    torch.manual_seed(2)
    eps = torch.randn(32, 4)
    action = torch.tanh(mean + eps * log_std.exp())
    corr = torch.log(torch.relu(1 - action.pow(2)) + 1e-6).sum(-1)
    expected = (((-0.5 * eps.pow(2) - log_std).sum(-1) - 0.5 * math.log(2 * math.pi)) * 4) - corr
    torch.testing.assert_close(out["scaled_entropy"], -expected, rtol=1e-4, atol=1e-4)


def test_policy_sample_masks_unused_action_dimensions() -> None:
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0]]).expand(8, 4)
    out = policy_sample(torch.randn(8, 4), torch.randn(8, 4), mask)
    assert torch.all(out["action"][:, 2:] == 0) and torch.all(out["mean"][:, 2:] == 0)


def test_running_scale_tracks_the_percentile_range() -> None:
    scale = PercentileScale(0.01, limit=1.0, smooth="range")
    x = torch.linspace(0, 100, 101)
    scale.update(x)
    # 95th - 5th percentile = 90; value moves from 1 towards 90 by tau
    torch.testing.assert_close(scale.value, torch.tensor([1 + 0.01 * 89]))
    q = torch.quantile(x, torch.tensor([0.05, 0.95]))
    torch.testing.assert_close(scale.batch_percentiles(x), q)
    small = PercentileScale(1.0, limit=1.0, smooth="range")
    small.update(torch.zeros(10))
    assert small.value.item() == 1.0  # never below 1
    torch.testing.assert_close(torch.tensor([1.89]) / scale.scale(), torch.tensor([1.0]))
    assert scale.offset().item() == 0.0


@pytest.mark.parametrize(
    ("length", "expected"), [(1000, 0.995), (500, 0.99), (250, 0.98), (100, 0.95), (10, 0.95)]
)
def test_discount_heuristic(length: int, expected: float) -> None:
    assert discount_from_episode_length(length) == pytest.approx(expected)
