"""DIAMOND's convolutional blocks, laid out so that the reference's state-dict keys match ours.

DIAMOND (eloialonso/diamond @ 5bcd159, ``src/models/blocks.py``) differs from the generic
:mod:`worldflux.nn.unet` blocks in ways that change parameter counts and outputs: GroupNorm uses
``max(1, C // 32)`` groups (not ``min(32, C)``), self-attention normalises with a plain affine
GroupNorm and its residual adds the *normalised* input, each U-Net level's up path has
``depth + 1`` blocks whose last one maps back to the previous level's width, and the skip
connections are the per-block outputs of the down path. Downsampling, upsampling and the Fourier
noise embedding are the shared ones (:mod:`worldflux.nn.unet`), which match exactly.

Axis legend: ``B`` batch, ``C`` channels, ``H, W`` height and width, ``E`` condition width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.errors import ConfigError
from worldflux.nn.unet import Downsample, Upsample

#: Channels per GroupNorm group, GroupNorm epsilon and attention head width of the reference.
GROUP_SIZE = 32
GN_EPS = 1e-5
HEAD_DIM = 8


def num_groups(channels: int) -> int:
    """The reference's GroupNorm group count: one group per 32 channels, at least one."""
    return max(1, channels // GROUP_SIZE)


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    """3x3 convolution that keeps the spatial size."""
    return nn.Conv2d(cin, cout, 3, padding=1)


class GroupNorm(nn.Module):
    """Affine GroupNorm with :func:`num_groups` groups (``norm`` holds the parameters)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(num_groups(channels), channels, eps=GN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x)


class AdaGroupNorm(nn.Module):
    """Parameter-free GroupNorm, then ``* (1 + scale) + shift`` from a linear map of the condition."""

    def __init__(self, channels: int, cond_channels: int) -> None:
        super().__init__()
        self.groups = num_groups(channels)
        self.linear = nn.Linear(cond_channels, 2 * channels)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """``x (B, C, H, W)``, ``cond (B, E)`` -> ``(B, C, H, W)``."""
        x = F.group_norm(x, self.groups, eps=GN_EPS)
        scale, shift = self.linear(cond)[:, :, None, None].chunk(2, dim=1)
        return x * (1 + scale) + shift


class SelfAttention2d(nn.Module):
    """Multi-head attention over positions, heads of width 8, zero-initialised output projection.

    As in the reference, the residual adds the normalised input (not the block's input).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.heads = max(1, channels // HEAD_DIM)
        if channels % self.heads:
            raise ConfigError(f"attention channels={channels} must divide into {self.heads} heads")
        self.norm = GroupNorm(channels)
        self.qkv_proj = nn.Conv2d(channels, 3 * channels, 1)
        self.out_proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        x = self.norm(x)
        qkv = self.qkv_proj(x).view(b, 3 * self.heads, c // self.heads, h * w).transpose(2, 3)
        q, k, v = qkv.chunk(3, dim=1)
        att = (q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))).softmax(-1)
        y = (att @ v).transpose(2, 3).reshape(b, c, h, w)
        return x + self.out_proj(y)


class ResBlock(nn.Module):
    """Two (adaptive norm -> SiLU -> 3x3 conv) with a 1x1 projection skip, optional attention."""

    def __init__(self, cin: int, cout: int, cond_channels: int, attn: bool) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.norm1 = AdaGroupNorm(cin, cond_channels)
        self.conv1 = conv3x3(cin, cout)
        self.norm2 = AdaGroupNorm(cout, cond_channels)
        self.conv2 = conv3x3(cout, cout)
        self.attn = SelfAttention2d(cout) if attn else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts close to its skip path

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        r = self.proj(x)
        x = self.conv1(F.silu(self.norm1(x, cond)))
        x = self.conv2(F.silu(self.norm2(x, cond)))
        return self.attn(x + r)


class ResBlocks(nn.Module):
    """A chain of :class:`ResBlock` (``resblocks``); ``to_cat[i]`` is concatenated before block i."""

    def __init__(
        self, cins: Sequence[int], couts: Sequence[int], cond_channels: int, attn: bool
    ) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(
            ResBlock(i, o, cond_channels, attn) for i, o in zip(cins, couts)
        )

    def forward(
        self, x: Tensor, cond: Tensor, to_cat: Sequence[Tensor] | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        outputs = []
        for i, block in enumerate(self.resblocks):
            x = x if to_cat is None else torch.cat((x, to_cat[i]), dim=1)
            x = block(x, cond)
            outputs.append(x)
        return x, outputs


def down_blocks(
    channels: Sequence[int], depths: Sequence[int], attn: Sequence[bool], cond_channels: int
) -> list[ResBlocks]:
    """Per level ``i``: ``depths[i]`` blocks from ``channels[i - 1]`` to ``channels[i]``."""
    out = []
    for i, n in enumerate(depths):
        c1, c2 = channels[max(0, i - 1)], channels[i]
        out.append(ResBlocks([c1] + [c2] * (n - 1), [c2] * n, cond_channels, bool(attn[i])))
    return out


def check_levels(
    where: str, channels: Sequence[int], depths: Sequence[int], attn: Sequence[bool]
) -> None:
    """Refuse mismatched per-level lists, empty lists and non-positive widths or depths."""
    if not len(channels) == len(depths) == len(attn) or not channels:
        raise ConfigError(
            f"{where}: channels, depths and attn_depths need one entry per level (at least one), "
            f"got {len(channels)}, {len(depths)}, {len(attn)}"
        )
    if min(channels) < 1 or min(depths) < 1:
        raise ConfigError(f"{where}: channels and depths must be >= 1, got {channels}, {depths}")


class UNet(nn.Module):
    """DIAMOND's U-Net body (no input/output convolutions): see the module docstring.

    Inputs whose side is not divisible by ``2 ** (levels - 1)`` are zero-padded at the bottom
    and right and cropped back, as the reference does.
    """

    def __init__(
        self,
        cond_channels: int,
        depths: Sequence[int],
        channels: Sequence[int],
        attn_depths: Sequence[bool],
    ) -> None:
        super().__init__()
        check_levels("UNet", channels, depths, attn_depths)
        self.num_down = len(channels) - 1
        self.d_blocks = nn.ModuleList(down_blocks(channels, depths, attn_depths, cond_channels))
        ups = []
        for i, n in enumerate(depths):
            c1, c2 = channels[max(0, i - 1)], channels[i]
            ups.append(
                ResBlocks(
                    [2 * c2] * n + [c1 + c2], [c2] * n + [c1], cond_channels, bool(attn_depths[i])
                )
            )
        self.u_blocks = nn.ModuleList(reversed(ups))
        last = channels[-1]
        self.mid_blocks = ResBlocks([last] * 2, [last] * 2, cond_channels, True)
        downs: list[nn.Module] = [nn.Identity()] + [Downsample(c) for c in channels[:-1]]
        for d in downs[1:]:
            nn.init.orthogonal_(d.conv.weight)  # type: ignore[union-attr,arg-type]
        self.downsamples = nn.ModuleList(downs)
        ups_: list[nn.Module] = [nn.Identity()] + [Upsample(c) for c in reversed(channels[:-1])]
        self.upsamples = nn.ModuleList(ups_)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """``x (B, channels[0], H, W)``, ``cond (B, E)`` -> ``(B, channels[0], H, W)``."""
        h, w = x.shape[-2:]
        f = 2**self.num_down
        x = F.pad(x, (0, math.ceil(w / f) * f - w, 0, math.ceil(h / f) * f - h))
        skips = []
        for block, down in zip(self.d_blocks, self.downsamples):
            x_down = down(x)
            x, outs = block(x_down, cond)
            skips.append((x_down, *outs))
        x, _ = self.mid_blocks(x, cond)
        for block, up, skip in zip(self.u_blocks, self.upsamples, reversed(skips)):
            x, _ = block(up(x), cond, skip[::-1])
        return x[..., :h, :w]


class SmallResBlock(nn.Module):
    """Unconditioned ``GroupNorm -> SiLU -> 3x3 conv`` residual block (the actor-critic's)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.f = nn.Sequential(GroupNorm(cin), nn.SiLU(), conv3x3(cin, cout))
        self.skip_projection = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.skip_projection(x) + self.f(x)


def init_lstm(module: nn.Module) -> None:
    """The reference's LSTM init: Xavier input weights, orthogonal recurrent weights, zero biases
    with the forget-gate input bias at 1."""
    for name, p in module.named_parameters():
        with torch.no_grad():
            if "weight_ih" in name:
                nn.init.xavier_uniform_(p)
            elif "weight_hh" in name:
                nn.init.orthogonal_(p)
            elif "bias" in name:
                p.zero_()
                if "bias_ih" in name:
                    p[p.size(0) // 4 : p.size(0) // 2] = 1.0
