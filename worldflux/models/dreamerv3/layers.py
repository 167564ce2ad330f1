"""DreamerV3 building blocks: initialisation, RMSNorm, dense and block-diagonal layers, MLPs.

Facts from danijar/dreamerv3 ``embodied/jax/nets.py`` @ e3f0224: weights are drawn from a normal
truncated to two standard deviations, rescaled to unit variance (factor 1.1368) and by
``1/sqrt(fan_in)``, then multiplied by the layer's ``outscale``; biases start at zero. The
block-diagonal layer counts the fan-in over *all* of its input units, not one block's. RMSNorm uses
``eps = 1e-4`` and a learned scale (no shift).

Axis legend: ``N`` flattened batch, ``G`` blocks, ``I``/``O`` input/output units per block,
``C`` channels, ``H, W`` height and width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.errors import ConfigError
from worldflux.models.dreamerv3.fused import rms_norm_silu

TRUNC_STD_FIX = 1.1368  # rescales a [-2, 2]-truncated standard normal back to unit variance


def init_weight_(weight: Tensor, fan_in: int, outscale: float = 1.0) -> None:
    """In place: truncated normal with std ``outscale / sqrt(fan_in)`` (the official ``trunc_normal_in``)."""
    with torch.no_grad():
        if outscale == 0.0:
            weight.zero_()
            return
        nn.init.trunc_normal_(weight, 0.0, 1.0, -2.0, 2.0)
        weight.mul_(TRUNC_STD_FIX * outscale / math.sqrt(fan_in))


def activation(name: str) -> nn.Module:
    """The activation module of ``name`` (``silu``, ``gelu``, ``relu``, ``tanh``, ``none``)."""
    table = {
        "silu": nn.SiLU,
        "gelu": nn.GELU,
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "none": nn.Identity,
    }
    if name not in table:
        raise ConfigError(f"unknown activation {name!r}; expected one of {sorted(table)}")
    return table[name]()


class RMSNorm(nn.Module):
    """RMS normalisation over the last axis with a learned scale (``norm: rms``)."""

    def __init__(self, dim: int, eps: float = 1e-4) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.scale, self.eps)


def norm_layer(kind: str, dim: int) -> nn.Module:
    """``rms`` (the official choice), ``layer`` or ``none``."""
    if kind == "rms":
        return RMSNorm(dim)
    if kind == "layer":
        return nn.LayerNorm(dim, eps=1e-4)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown norm {kind!r}; expected 'rms', 'layer' or 'none'")


class Linear(nn.Linear):
    """``nn.Linear`` with the official initialisation and output scale."""

    def __init__(self, in_dim: int, out_dim: int, outscale: float = 1.0) -> None:
        self.outscale = outscale
        super().__init__(in_dim, out_dim)

    def reset_parameters(self) -> None:
        init_weight_(self.weight, self.in_features, self.outscale)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class NormAct(nn.Module):
    """Norm over the last axis, then activation; RMSNorm + SiLU (the official pair) run fused."""

    def __init__(self, kind: str, dim: int, act: str) -> None:
        super().__init__()
        self.norm = norm_layer(kind, dim)
        self.act = activation(act)
        self.fused = kind == "rms" and act == "silu"

    def forward(self, x: Tensor) -> Tensor:
        if self.fused and isinstance(self.norm, RMSNorm):
            return rms_norm_silu(x, self.norm.scale, self.norm.eps)
        return self.act(self.norm(x))


class Dense(nn.Module):
    """Linear, norm, activation: the official hidden layer."""

    def __init__(self, in_dim: int, out_dim: int, norm: str = "rms", act: str = "silu") -> None:
        super().__init__()
        self.linear = Linear(in_dim, out_dim)
        self.normact = NormAct(norm, out_dim, act)

    def forward(self, x: Tensor) -> Tensor:
        return self.normact(self.linear(x))


class MLP(nn.Sequential):
    """``layers`` dense layers of ``units`` (official ``nets.MLP``)."""

    def __init__(self, in_dim: int, layers: int, units: int, norm: str = "rms", act: str = "silu"):
        dims = [in_dim] + [units] * layers
        super().__init__(*[Dense(dims[i], dims[i + 1], norm, act) for i in range(layers)])
        self.out_dim = dims[-1]


class BlockLinear(nn.Module):
    """Block-diagonal linear layer: input block ``g`` only feeds output block ``g``.

    Computed as one batched matrix product over the ``G`` blocks.
    """

    def __init__(self, in_dim: int, out_dim: int, blocks: int, outscale: float = 1.0) -> None:
        super().__init__()
        if in_dim % blocks or out_dim % blocks:
            raise ConfigError(
                f"BlockLinear sizes {in_dim} -> {out_dim} must be divisible by blocks={blocks}"
            )
        self.blocks, self.in_dim, self.out_dim = blocks, in_dim, out_dim
        self.weight = nn.Parameter(torch.empty(blocks, in_dim // blocks, out_dim // blocks))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        init_weight_(self.weight, in_dim, outscale)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.blocks, self.in_dim // self.blocks).transpose(0, 1)  # G N I
        y = torch.baddbmm(self.bias.view(self.blocks, 1, -1), x, self.weight)  # G N O
        return y.transpose(0, 1).reshape(*lead, self.out_dim)


class ChannelNormAct(nn.Module):
    """Norm over the channels of ``(N, C, H, W)`` maps, then activation (official NHWC norm)."""

    def __init__(self, kind: str, channels: int, act: str) -> None:
        super().__init__()
        self.normact = NormAct(kind, channels, act)

    def forward(self, x: Tensor) -> Tensor:
        # The permuted view of a channels-last tensor is contiguous, so this costs no copy.
        return self.normact(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Conv2d(nn.Conv2d):
    """'Same'-padded convolution with the official initialisation.

    With ``stride > 1`` the padding follows XLA's ``SAME`` rule (the extra row/column of an
    even total padding goes to the bottom/right), as the official JAX code.
    """

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, outscale: float = 1.0, stride: int = 1
    ) -> None:
        self.outscale = outscale
        super().__init__(in_ch, out_ch, kernel, stride, padding=kernel // 2 if stride == 1 else 0)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride[0] == 1:
            return super().forward(x)
        pads = []
        for size, k, s in zip(x.shape[:1:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))

    def reset_parameters(self) -> None:
        k = self.kernel_size[0] * self.kernel_size[1]
        init_weight_(self.weight, self.in_channels * k, self.outscale)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class UpConv2d(Conv2d):
    """Nearest 2x upsampling followed by a 'same' convolution, fused.

    Convolving the 2x nearest-upsampled map with a ``K x K`` kernel equals, for each of the four
    output phases, a small convolution of the *low-resolution* map with the kernel's taps summed
    per input pixel. The layer keeps the official ``K x K`` weight (same parameters, same output)
    and evaluates it as one ``(4 * C_out)``-channel convolution at low resolution followed by a
    pixel shuffle, which needs about a third of the multiply-adds of upsample-then-convolve.
    """

    fold: Tensor

    def __init__(self, in_ch: int, out_ch: int, kernel: int, outscale: float = 1.0) -> None:
        super().__init__(in_ch, out_ch, kernel, outscale)
        if kernel % 2 == 0:
            raise ConfigError(f"UpConv2d needs an odd kernel, got {kernel}")
        pad = kernel // 2
        # Phase a (output row 2i + a) reads upsampled rows 2i + a + d, d in [-pad, pad], i.e.
        # low-res rows i + floor((a + d) / 2). Gather those offsets into a small kernel.
        lo = (0 - pad) // 2
        hi = (1 + pad) // 2
        self.small = hi - lo + 1
        self.small_pad = -lo
        fold = torch.zeros(2, self.small, kernel)
        for a in range(2):
            for d in range(-pad, pad + 1):
                fold[a, (a + d) // 2 - lo, d + pad] = 1.0
        self.register_buffer("fold", fold, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.pixel_shuffle(self.phases(x), 2)

    def phases(self, x: Tensor) -> Tensor:
        """The output before the pixel shuffle: ``(N, 4 * C_out, H, W)``, phase-minor channels."""
        w = self.weight  # O I K K
        out_ch = w.shape[0]
        # weight for phases (a, b): sum of taps landing on each low-res offset
        small = torch.einsum("ask,btl,oikl->oabist", self.fold, self.fold, w)
        small = small.reshape(out_ch * 4, w.shape[1], self.small, self.small)
        bias = None if self.bias is None else self.bias.repeat_interleave(4)
        return F.conv2d(x, small, bias, padding=self.small_pad)
