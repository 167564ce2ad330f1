"""Unit tests of DreamerV3's parts: transforms, distributions, block GRU, layers, optimiser."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from worldflux.models.dreamerv3.behavior import lambda_return
from worldflux.models.dreamerv3.heads import Categorical, TwoHotHead, symexp_bins
from worldflux.models.dreamerv3.rssm import RSSM, categorical_kl
from worldflux.nn.conv import UpConv2d
from worldflux.nn.distributions import unimix_logprobs
from worldflux.nn.functional import symexp, symlog, twohot
from worldflux.nn.layers import BlockLinear
from worldflux.nn.scale import PercentileScale
from worldflux.optim import LaProp


def test_symlog_symexp_round_trip() -> None:
    x = torch.tensor([-1e6, -100.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 100.0, 1e6], dtype=torch.float64)
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-9)
    assert torch.allclose(symlog(symexp(x.clamp(-20, 20))), x.clamp(-20, 20), rtol=1e-9)


def test_symexp_bins_are_official() -> None:
    bins = symexp_bins(255)
    assert bins.shape == (255,) and bins[127] == 0
    assert torch.allclose(bins, -bins.flip(0))
    assert torch.allclose(symlog(bins), torch.linspace(-20, 20, 255), atol=1e-4)


def test_twohot_round_trip_and_uniform_is_zero() -> None:
    head = TwoHotHead(in_dim=4, units=8, layers=1, bins=255, outscale=0.0)
    targets = torch.tensor([-3000.0, -2.5, -0.01, 0.0, 0.3, 7.0, 12345.0])
    weights = twohot(targets, head.bins)
    assert torch.allclose(weights.sum(-1), torch.ones(len(targets)))
    assert torch.allclose((weights * head.bins).sum(-1), targets, rtol=1e-5)
    # logits that put exactly the two-hot mass decode back to the target
    logits = torch.log(weights.clamp_min(1e-30))
    assert torch.allclose(head.pred(logits), targets, rtol=1e-4, atol=1e-4)
    # zero-initialised output layer -> uniform -> exactly zero prediction
    assert torch.all(head.pred(head(torch.randn(5, 4))) == 0)


def test_unimix_bounds_probabilities() -> None:
    logits = torch.tensor([[50.0, -50.0, -50.0, -50.0]])
    probs = unimix_logprobs(logits, 0.01).exp()
    assert torch.allclose(probs.sum(-1), torch.ones(1))
    assert probs.min() >= 0.01 / 4 - 1e-7
    assert torch.isclose(probs[0, 0], torch.tensor(0.99 + 0.0025))
    policy = Categorical(logits, unimix=0.01)
    assert policy.logprobs.exp().min() >= 0.01 / 4 - 1e-7


def test_free_nats_clip_kl_from_below(build) -> None:
    model = build()
    rssm: RSSM = model.dynamics
    deter = torch.randn(2, 3, rssm.deter)
    same = rssm.prior_logit(deter).detach()
    losses, metrics = rssm.kl_losses(same, deter)
    assert metrics["kl"] < 1e-5
    assert torch.all(losses["dyn"] == rssm.free_nats) and torch.all(losses["rep"] == 1.0)
    far = torch.full_like(same, -30.0)
    far[..., 0] = 30.0
    losses, _ = rssm.kl_losses(far, deter)
    assert torch.all(losses["dyn"] > 1.0)


def test_kl_matches_definition() -> None:
    p = torch.log_softmax(torch.randn(3, 5, 4), -1)
    q = torch.log_softmax(torch.randn(3, 5, 4), -1)
    ref = F.kl_div(q, p, log_target=True, reduction="none").sum((-2, -1))
    assert torch.allclose(categorical_kl(p, q), ref, atol=1e-6)


def test_block_linear_blocks_are_independent() -> None:
    layer = BlockLinear(24, 16, blocks=4)
    x = torch.randn(3, 24)
    y = layer(x)
    x2 = x.clone()
    x2[:, 6:12] += torch.randn(3, 6)  # perturb input block 1 only
    changed = (layer(x2) - y).abs().view(3, 4, 4).sum((0, 2)) > 0
    assert changed.tolist() == [False, True, False, False]


def test_block_gru_gates_stay_in_their_block(build) -> None:
    rssm: RSSM = build().dynamics
    g, w = rssm.blocks, rssm.deter // rssm.blocks
    x = torch.randn(2, rssm.deter)
    out = rssm.dyngru(x).view(2, g, 3, w)
    x2 = x.clone()
    x2[:, 2 * w : 3 * w] += 1.0
    diff = (rssm.dyngru(x2).view(2, g, 3, w) - out).abs().sum((0, 2, 3)) > 0
    assert diff.nonzero().flatten().tolist() == [2]


def test_block_linear_init_uses_full_fan_in() -> None:
    torch.manual_seed(0)
    layer = BlockLinear(4096, 512, blocks=8)
    assert math.isclose(layer.weight.std().item(), 1 / math.sqrt(4096), rel_tol=0.05)


@pytest.mark.parametrize("kernel", [3, 5])
def test_fused_upsample_conv_equals_upsample_then_conv(kernel: int) -> None:
    layer = UpConv2d(6, 5, kernel)
    x = torch.randn(2, 6, 4, 7)
    ref = F.conv2d(
        F.interpolate(x, scale_factor=2.0, mode="nearest"),
        layer.weight,
        layer.bias,
        padding=kernel // 2,
    )
    assert torch.allclose(layer(x), ref, atol=1e-5)


def test_lambda_return_recursion() -> None:
    rew = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    boot = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    zeros = torch.zeros_like(rew)
    disc, lam = 0.9, 0.5
    ret = lambda_return(zeros, zeros, rew, boot, disc, lam)
    r2 = 3 + disc * 40
    r1 = 2 + disc * ((1 - lam) * 30 + lam * r2)
    r0 = 1 + disc * ((1 - lam) * 20 + lam * r1)
    assert torch.allclose(ret, torch.tensor([[r0, r1, r2]]))
    term = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    ret = lambda_return(zeros, term, rew, boot, disc, lam)
    assert torch.isclose(ret[0, 1], torch.tensor(2.0))


def test_return_norm_percentile_ema() -> None:
    norm = PercentileScale(0.01, limit=1.0, smooth="bounds")
    x = torch.linspace(0, 100, 1001)
    offset, scale = norm(x, update=True)
    assert torch.isclose(offset, torch.tensor(0.05)) and scale == 1.0  # hi - lo = 0.9 < limit
    for _ in range(2000):
        offset, scale = norm(x, update=True)
    assert torch.isclose(scale, torch.tensor(90.0), rtol=1e-3)
    frozen = norm(x * 10, update=False)
    assert torch.equal(frozen[1], scale)


def test_laprop_matches_official_update_rule() -> None:
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    opt = LaProp([p], lr=0.1, agc=0.3, eps=1e-20, warmup=2)
    grads = [
        torch.tensor([0.1, 0.2, -0.3]),
        torch.tensor([10.0, 0.0, 1.0]),
        torch.tensor([0.5, -0.5, 0.5]),
    ]
    ref, nu, mu = p.detach().clone(), torch.zeros(3), torch.zeros(3)
    for t, g in enumerate(grads, start=1):
        upper = 0.3 * max(1e-3, ref.norm().item())
        g_c = g / max(1.0, g.norm().item() / upper)
        nu = 0.999 * nu + 0.001 * g_c**2
        u = g_c / ((nu / (1 - 0.999**t)).sqrt() + 1e-20)
        mu = 0.9 * mu + 0.1 * u
        ref = ref - 0.1 * min(1.0, (t - 1) / 2) * mu / (1 - 0.9**t)
        p.grad = g.clone()
        opt.step()
        assert torch.allclose(p.detach(), ref, atol=1e-6)
    assert opt.current_lr() == pytest.approx(0.1)


def test_decoder_losses_match_its_predictions(build) -> None:
    from tests.models.dreamerv3.conftest import MULTIMODAL, make_batch

    model = build(**MULTIMODAL)
    obs = {k: v[:, 0] for k, v in make_batch(model.config, b=3, t=1)["obs"].items()}
    deter = torch.randn(3, model.config.deter_dim)
    stoch = torch.randn(3, model.config.stoch_dim * model.config.classes)
    for p in model.decoder.parameters():  # non-trivial outputs
        torch.nn.init.normal_(p, std=0.1)
    preds = model.decoder(deter, stoch)
    losses = model.decoder.losses(deter, stoch, obs)
    for name, pred in preds.items():
        target = model.decoder.obs_target(name, obs[name])
        assert torch.allclose(losses[name], (pred - target).square().flatten(1).sum(-1), rtol=1e-4)


def test_fused_norm_act_matches_composite() -> None:
    from worldflux.nn.fused import rms_norm_silu, sigmoid_squared_error

    x = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    scale = torch.rand(7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: rms_norm_silu(a, b, 1e-4), (x, scale))
    ref = F.silu(F.rms_norm(x, (7,), scale, 1e-4))
    assert torch.allclose(rms_norm_silu(x, scale, 1e-4), ref)
    z = torch.randn(3, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    t = torch.rand(3, 2, 4, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: sigmoid_squared_error(a, t), (z,))


def test_twohot_loss_equals_dense_cross_entropy() -> None:
    head = TwoHotHead(in_dim=4, units=8, layers=1, bins=255, outscale=1.0)
    logits = torch.randn(6, 255)
    target = torch.tensor([-1e9, -3.0, 0.0, 0.25, 40.0, 1e9])
    dense = -(twohot(target, head.bins) * torch.log_softmax(logits, -1)).sum(-1)
    assert torch.allclose(head.loss(logits, target), dense, atol=1e-5)


def test_strided_conv_uses_xla_same_padding() -> None:
    from worldflux.nn.conv import Conv2d

    conv = Conv2d(2, 3, 5, stride=2)
    x = torch.randn(1, 2, 8, 8)
    # XLA SAME for 8 -> 4 with kernel 5, stride 2: total padding 3, one before, two after
    ref = F.conv2d(F.pad(x, (1, 2, 1, 2)), conv.weight, conv.bias, stride=2)
    assert conv(x).shape == (1, 3, 4, 4) and torch.allclose(conv(x), ref)


def test_strided_encoder_keeps_parameter_count(build) -> None:
    from worldflux import get_config
    from worldflux.models.dreamerv3.module import DreamerV3

    pooled = build()
    config = get_config("dreamer:ci")
    config.encoder = {**config.encoder, "strided": True}
    strided = DreamerV3(config)
    assert strided.num_parameters() == pooled.num_parameters()
    assert strided.encode(torch.zeros(2, 3, 64, 64, dtype=torch.uint8)).shape == (2, 4 * 4 * 16)
