"""The S5 layers: parallel scan == step-by-step recurrence, resets, discretisation, init."""

from __future__ import annotations

import pytest
import torch

from worldflux.errors import ConfigError, ShapeError
from worldflux.models.ssm.s5 import S5Layer, S5Stack, affine_scan, hippo_diagonal


def _sequential(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    x, out = torch.zeros_like(c[:, 0]), []
    for t in range(a.shape[1]):
        x = a[:, t] * x + c[:, t]
        out.append(x)
    return torch.stack(out, 1)


def test_affine_scan_matches_the_sequential_recurrence_for_every_length() -> None:
    gen = torch.Generator().manual_seed(0)
    for t in (1, 2, 3, 7, 16, 33):
        a = torch.complex(torch.rand(2, t, 5, generator=gen), torch.rand(2, t, 5, generator=gen))
        c = torch.complex(torch.randn(2, t, 5, generator=gen), torch.randn(2, t, 5, generator=gen))
        a = a * 0.9  # |a| < 1.3: keep the products in a range where float32 rounding is small
        torch.testing.assert_close(affine_scan(a, c), _sequential(a, c), rtol=1e-5, atol=1e-5)


def test_stack_scan_with_resets_equals_the_one_step_recurrence() -> None:
    torch.manual_seed(1)
    stack = S5Stack(12, 8, 3, blocks=2)
    b, t = 3, 11
    u = torch.randn(b, t, 12)
    x0 = torch.randn(b, 3, 8, dtype=torch.complex64)
    init = torch.randn(b, 3, 8, dtype=torch.complex64)
    reset = torch.zeros(b, t)
    reset[0, 4] = reset[1, 1] = reset[1, 7] = reset[2, 10] = 1.0
    y, states = stack(u, x0, reset, init)
    h, ys, hs = x0, [], []
    for i in range(t):
        r = reset[:, i, None, None]
        h = h * (1 - r) + init * r
        out, h = stack.step(u[:, i], h)
        ys.append(out)
        hs.append(h)
    torch.testing.assert_close(y, torch.stack(ys, 1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(states, torch.stack(hs, 1), rtol=1e-5, atol=1e-5)


def test_gradients_of_scan_and_recurrence_agree() -> None:
    torch.manual_seed(2)
    layer = S5Layer(6, 4, blocks=1)
    u = torch.randn(2, 9, 6)
    x0 = torch.zeros(2, 4, dtype=torch.complex64)
    y, _ = layer(u, x0, torch.zeros(2, 9), x0)
    g1 = torch.autograd.grad(y.square().sum(), list(layer.parameters()))
    h, outs = x0, []
    for i in range(9):
        out, h = layer.step(u[:, i], h)
        outs.append(out)
    g2 = torch.autograd.grad(torch.stack(outs, 1).square().sum(), list(layer.parameters()))
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_bilinear_discretisation_and_initialisation() -> None:
    torch.manual_seed(3)
    layer = S5Layer(8, 16, blocks=2, dt_min=0.01, dt_max=0.05)
    step = layer.log_step.exp()[:, 0]
    assert (step >= 0.01 - 1e-7).all() and (step <= 0.05 + 1e-7).all()
    lam = torch.complex(layer.Lambda_re, layer.Lambda_im)
    torch.testing.assert_close(layer.Lambda_re, torch.full((16,), -0.5))  # HiPPO normal part
    lam_bar, b_bar, _ = layer.discrete()
    expect = (1 + step / 2 * lam) / (1 - step / 2 * lam)
    torch.testing.assert_close(lam_bar, expect)
    assert (lam_bar.abs() < 1).all()  # stable for Re(Lambda) < 0
    b = torch.complex(layer.B[..., 0], layer.B[..., 1])
    torch.testing.assert_close(b_bar, (step / (1 - step / 2 * lam))[:, None] * b)
    # the eigenvalues are the same in every block
    lam8, _ = hippo_diagonal(8)
    torch.testing.assert_close(layer.Lambda_im[:8], lam8.imag.float())
    torch.testing.assert_close(layer.Lambda_im[8:], lam8.imag.float())


def test_layer_refuses_bad_sizes_timescales_and_inputs() -> None:
    with pytest.raises(ConfigError, match="divisible by blocks"):
        S5Layer(8, 12, blocks=8)
    with pytest.raises(ConfigError, match="dt_min < dt_max"):
        S5Layer(8, 8, dt_min=0.1, dt_max=0.01)
    with pytest.raises(ConfigError, match=r"must lie in \[1e-6, 1.0\]"):
        S5Layer(8, 8, dt_min=1e-3, dt_max=10.0)
    with pytest.raises(ConfigError, match="dt_min < dt_max"):
        S5Layer(8, 8, dt_min=float("nan"))
    with pytest.raises(ConfigError, match="discretization"):
        S5Layer(8, 8, discretization="euler")
    layer = S5Layer(8, 8, blocks=2)
    x0 = torch.zeros(2, 8, dtype=torch.complex64)
    with pytest.raises(ShapeError, match=r"\(B, T >= 1, 8\)"):
        layer(torch.randn(2, 0, 8), x0, torch.zeros(2, 0), x0)  # an empty sequence
    with pytest.raises(ShapeError, match=r"\(B, T >= 1, 8\)"):
        layer(torch.randn(2, 5, 6), x0, torch.zeros(2, 5), x0)  # the wrong width
    with pytest.raises(ShapeError, match="reset must have shape"):
        layer(torch.randn(2, 5, 8), x0, torch.zeros(2, 4), x0)
