"""U-Net blocks with conditioning, in the style of DIAMOND's EDM denoiser.

DIAMOND (Alonso et al. 2024, eloialonso/diamond ``models/blocks.py``) conditions every residual
block on one embedding of the noise level and the past actions through adaptive group norms: a
GroupNorm without affine parameters whose per-channel scale and shift come from a linear map of
the condition. Blocks are ``norm -> SiLU -> conv3x3`` twice with a 1x1 skip when the width
changes, the second convolution starts at zero (each block starts as its skip path), and
self-attention runs at chosen resolutions. The descriptions are from the paper and the
repository's structure; the code here is ours.

Axis legend: ``B`` batch, ``C`` channels, ``H, W`` height and width, ``E`` condition width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.errors import ConfigError, ShapeError


class AdaGroupNorm(nn.Module):
    """GroupNorm whose per-channel ``scale`` and ``shift`` are linear in the condition:
    ``norm(x) * (1 + scale) + shift`` (zero-initialised map: a plain GroupNorm at start)."""

    def __init__(self, channels: int, cond_dim: int, groups: int = 32) -> None:
        super().__init__()
        self.groups = min(groups, channels)
        if channels % self.groups:
            raise ConfigError(f"channels={channels} must be divisible by groups={self.groups}")
        self.linear = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """``x (B, C, H, W)``, ``cond (B, E)`` -> ``(B, C, H, W)``."""
        scale, shift = self.linear(cond)[:, :, None, None].chunk(2, 1)
        return F.group_norm(x, self.groups, eps=1e-5) * (1 + scale) + shift


class SelfAttention2d(nn.Module):
    """Residual multi-head self-attention over the ``H * W`` positions of a feature map;
    the output projection starts at zero."""

    def __init__(self, channels: int, cond_dim: int, head_dim: int = 8, groups: int = 32) -> None:
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = AdaGroupNorm(channels, cond_dim, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x, cond)).view(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # B heads HW Dh
        y = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(y.transpose(-1, -2).reshape(b, c, h, w))


class ResBlock(nn.Module):
    """Conditioned residual block (two adaptive-norm -> SiLU -> 3x3 conv), optional attention."""

    def __init__(
        self, in_ch: int, out_ch: int, cond_dim: int, attn: bool = False, groups: int = 32
    ) -> None:
        super().__init__()
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.norm1 = AdaGroupNorm(in_ch, cond_dim, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = AdaGroupNorm(out_ch, cond_dim, groups)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.attn = SelfAttention2d(out_ch, cond_dim, groups=groups) if attn else None

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """``x (B, in_ch, H, W)``, ``cond (B, E)`` -> ``(B, out_ch, H, W)``."""
        h = self.conv1(F.silu(self.norm1(x, cond)))
        h = self.conv2(F.silu(self.norm2(h, cond)))
        x = self.skip(x) + h
        return x if self.attn is None else self.attn(x, cond)


class Downsample(nn.Module):
    """Stride-2 3x3 convolution (halves ``H`` and ``W``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest 2x upsampling, then a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class FourierFeatures(nn.Module):
    """Embedding ``(B, dim)`` of scalars ``(B,)`` (e.g. EDM's ``c_noise``) as ``cos`` and ``sin``
    of fixed random frequencies (``std`` 1), as diffusion denoisers embed the noise level."""

    weight: Tensor

    def __init__(self, dim: int, std: float = 1.0) -> None:
        super().__init__()
        if dim % 2:
            raise ConfigError(f"FourierFeatures needs an even dim, got {dim}")
        self.register_buffer("weight", torch.randn(1, dim // 2) * std)

    def forward(self, x: Tensor) -> Tensor:
        f = 2 * math.pi * x.float()[:, None] @ self.weight
        return torch.cat([f.cos(), f.sin()], -1)


class UNet(nn.Module):
    """Conditioned U-Net: per level ``depths[i]`` ResBlocks of ``channels[i]`` and a
    downsampling (none after the last level), two middle blocks (with attention), and a mirrored
    up path whose blocks also read the skip connections.

    Args:
        in_channels, out_channels: image channels in and out.
        channels: widths per resolution level.
        depths: residual blocks per level.
        attn: per level, whether its blocks end with self-attention.
        cond_dim: width of the condition (noise + action embedding).
        groups: GroupNorm groups (capped at the channel count).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int],
        depths: Sequence[int],
        attn: Sequence[bool],
        cond_dim: int,
        groups: int = 32,
    ) -> None:
        super().__init__()
        if not len(channels) == len(depths) == len(attn):
            raise ConfigError(
                f"channels, depths and attn need one entry per level, got {len(channels)}, "
                f"{len(depths)}, {len(attn)}"
            )
        self.levels = len(channels)
        self.conv_in = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        self.downsamples, self.upsamples = nn.ModuleList(), nn.ModuleList()
        skips, prev = [channels[0]], channels[0]
        for i, (ch, n, a) in enumerate(zip(channels, depths, attn)):
            blocks = nn.ModuleList()
            for _ in range(n):
                blocks.append(ResBlock(prev, ch, cond_dim, a, groups))
                prev = ch
                skips.append(ch)
            self.down.append(blocks)
            last = i == self.levels - 1
            self.downsamples.append(nn.Identity() if last else Downsample(ch))
            if not last:
                skips.append(ch)
        self.mid = nn.ModuleList(
            [
                ResBlock(prev, prev, cond_dim, True, groups),
                ResBlock(prev, prev, cond_dim, False, groups),
            ]
        )
        for i in reversed(range(self.levels)):
            ch, n, a = channels[i], depths[i], attn[i]
            blocks = nn.ModuleList()
            for _ in range(n + 1):
                blocks.append(ResBlock(prev + skips.pop(), ch, cond_dim, a, groups))
                prev = ch
            self.up.append(blocks)
            self.upsamples.append(Upsample(ch) if i > 0 else nn.Identity())
        self.norm_out = AdaGroupNorm(prev, cond_dim, groups)
        self.conv_out = nn.Conv2d(prev, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """``x (B, in_channels, H, W)``, ``cond (B, E)`` -> ``(B, out_channels, H, W)``;
        ``H`` and ``W`` must be divisible by ``2 ** (levels - 1)``."""
        factor = 2 ** (self.levels - 1)
        if x.dim() != 4 or x.shape[-2] % factor or x.shape[-1] % factor:
            raise ShapeError(
                f"UNet input must be (B, C, H, W) with H, W divisible by {factor}, "
                f"got {tuple(x.shape)}"
            )
        h = self.conv_in(x)
        skips = [h]
        for blocks, down in zip(self.down, self.downsamples):
            for block in blocks:
                h = block(h, cond)
                skips.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                skips.append(h)
        for block in self.mid:
            h = block(h, cond)
        for blocks, up in zip(self.up, self.upsamples):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], 1), cond)
            h = up(h)
        return self.conv_out(F.silu(self.norm_out(h, cond)))
