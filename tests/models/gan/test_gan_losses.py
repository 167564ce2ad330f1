"""GameGAN losses against hand-computed values (worldflux.models.gan.losses)."""

from __future__ import annotations

import math

import pytest
import torch

from worldflux.models.gan import losses


def test_hinge_and_bce_match_their_definitions() -> None:
    d = torch.tensor([[-2.0], [0.5], [3.0]])
    assert losses.gen_adv(d, "hinge").item() == pytest.approx(-0.5)
    # real: mean(relu(1 - d)) = (3 + 0.5 + 0) / 3; fake: mean(relu(1 + d)) = (0 + 1.5 + 4) / 3
    assert losses.dis_adv(d, True, "hinge").item() == pytest.approx(3.5 / 3)
    assert losses.dis_adv(d, False, "hinge").item() == pytest.approx(5.5 / 3)
    sp = [math.log1p(math.exp(-x)) for x in (-2.0, 0.5, 3.0)]  # -log sigmoid(x)
    assert losses.gen_adv(d, "bce").item() == pytest.approx(sum(sp) / 3, rel=1e-6)
    sn = [math.log1p(math.exp(x)) for x in (-2.0, 0.5, 3.0)]  # -log(1 - sigmoid(x))
    assert losses.dis_adv(d, False, "bce").item() == pytest.approx(sum(sn) / 3, rel=1e-6)


def test_frame_recon_sums_pixels_and_averages_frames() -> None:
    pred = torch.zeros(2, 3, 2, 2)
    target = torch.ones(2, 3, 2, 2)
    target[1] = 2.0
    # frame 0: 12 pixels x 1, frame 1: 12 pixels x 4 -> (12 + 48) / 2
    assert losses.frame_recon(pred, target).item() == pytest.approx(30.0)


def test_r1_of_a_linear_discriminator_is_its_squared_weight_norm() -> None:
    w = torch.tensor([1.0, -2.0, 0.5])
    x = torch.randn(4, 3, requires_grad=True)
    out = (x * w).sum(1, keepdim=True)
    length = 12  # the reference scales by num_steps / 6
    expected = float(w.pow(2).sum()) * length / 6
    assert losses.r1(out, x, length).item() == pytest.approx(expected, rel=1e-6)


def test_feature_matching_is_l1_or_mse() -> None:
    a, b = torch.zeros(2, 4), torch.full((2, 4), 2.0)
    assert losses.feature_matching(a, b, l2=False).item() == pytest.approx(2.0)
    assert losses.feature_matching(a, b, l2=True).item() == pytest.approx(4.0)
