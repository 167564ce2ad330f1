"""Fused autograd functions for memory-bound steps on CPU (DreamerV3's norm and image loss,
TD-MPC2's Mish).

They compute the same values as the composite PyTorch ops (RMSNorm followed by SiLU; a sigmoid
output with a summed squared error; Mish) with fewer passes over memory and fewer saved tensors;
on a 2-core CPU the composite versions dominate the update time of the small presets.

Axis legend: ``N`` flattened batch, ``C`` features (normalised axis), ``F`` flattened sample.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


class _RMSNormSiLU(torch.autograd.Function):
    """``silu(x * rsqrt(mean(x^2, -1) + eps) * scale)`` with a hand-written backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: Tensor, eps: float) -> Tensor:
        rs = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        rs = rs.square_().div_(x.shape[-1]).add_(eps).rsqrt_()
        xhat = x * rs
        ctx.save_for_backward(xhat, rs, scale)
        return F.silu(xhat * scale)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        xhat, rs, scale = ctx.saved_tensors
        gy = torch.ops.aten.silu_backward(grad, xhat * scale)
        gscale = (gy * xhat).reshape(-1, xhat.shape[-1]).sum(0)
        gx = gy.mul_(scale)
        dot = (gx * xhat).mean(-1, keepdim=True)
        return gx.sub_(xhat * dot).mul_(rs), gscale, None


def rms_norm_silu(x: Tensor, scale: Tensor, eps: float) -> Tensor:
    """RMSNorm over the last axis with a learned ``scale``, then SiLU (fused)."""
    return _RMSNormSiLU.apply(x, scale, eps)


class _SigmoidSquaredError(torch.autograd.Function):
    """Per-sample ``sum((sigmoid(z) - target)^2)`` over all non-batch axes."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, target: Tensor) -> Tensor:
        prob = torch.sigmoid(z)
        diff = prob - target
        ctx.save_for_backward(prob, diff)
        return torch.linalg.vector_norm(diff.flatten(1), dim=1).square()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        prob, diff = ctx.saved_tensors
        shape = (-1,) + (1,) * (diff.dim() - 1)
        # d/dz (p - t)^2 = 2 (p - t) p (1 - p)
        out = prob.mul(prob).sub_(prob).mul_(diff).mul_(grad.view(shape) * -2.0)
        return out, None


def sigmoid_squared_error(z: Tensor, target: Tensor) -> Tensor:
    """``((sigmoid(z) - target) ** 2)`` summed per sample ``(N,)`` (fused)."""
    return _SigmoidSquaredError.apply(z, target)


def _mish_gate(x: Tensor) -> Tensor:
    """``tanh(softplus(x))`` from one exponential: with ``e = exp(x)``,
    ``tanh(log(1 + e)) = e (e + 2) / (e (e + 2) + 2)`` (``x`` clamped at 20, where it is 1)."""
    e = x.clamp(max=20.0).exp_()
    q = (e + 2.0).mul_(e)
    return q.div_(q + 2.0)


class _Mish(torch.autograd.Function):
    """``x * tanh(softplus(x))``; ATen's CPU kernel spends about 20 ns an element on ``log1p`` and
    ``tanh``, this one exponential does the same to float32 rounding (max 1e-6 relative)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        gate = _mish_gate(x)
        ctx.save_for_backward(x, gate)
        return gate * x

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        x, gate = ctx.saved_tensors
        # d/dx x tanh(sp(x)) = tanh(sp(x)) + x (1 - tanh(sp(x))^2) sigmoid(x)
        d = (1.0 - gate * gate).mul_(torch.sigmoid(x)).mul_(x).add_(gate)
        return d.mul_(grad)


def mish(x: Tensor) -> Tensor:
    """Mish, ``x * tanh(softplus(x))`` (TD-MPC2's activation), fused; equal to ``F.mish`` to
    float32 rounding."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _Mish.apply(x)
    return _mish_gate(x).mul_(x)


class Mish(torch.nn.Module):
    """Module form of :func:`mish` (a drop-in for ``nn.Mish``: no parameters, same state dict)."""

    def forward(self, x: Tensor) -> Tensor:
        return mish(x)
