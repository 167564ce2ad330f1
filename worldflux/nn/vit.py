"""Vision-transformer tokenisers: 2-D patch and 3-D tubelet embeddings with sincos positions.

A patch embedding cuts ``(B, C, H, W)`` images into ``p x p`` patches and projects each to ``D``
(Dosovitskiy et al. 2021); a tubelet embedding cuts ``(B, C, T, H, W)`` videos into
``t x p x p`` tubelets (V-JEPA 2 uses ``2 x 16 x 16``; Bardes et al. 2024, Assran et al. 2025).
Both are one convolution whose kernel equals its stride. The fixed 2-D / 3-D sine-cosine
positions give each axis its own share of the channels (half each for 2-D, a third each for 3-D),
each share split into sines and cosines of geometrically spaced frequencies.

Axis legend: ``B`` batch, ``C`` channels, ``T`` frames, ``H, W`` height and width, ``N`` tokens,
``D`` token width.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from worldflux.errors import ConfigError, ShapeError


def sincos_1d(positions: Tensor, dim: int, base: float = 10000.0) -> Tensor:
    """``(N, dim)``: sines then cosines of ``positions (N,)`` at ``dim / 2`` frequencies."""
    if dim % 2:
        raise ConfigError(f"sincos positions need an even width per axis, got {dim}")
    freqs = base ** (-torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))
    angles = positions.double()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], -1).float()


def sincos_positions(grid: Sequence[int], dim: int) -> Tensor:
    """Fixed positions ``(prod(grid), dim)`` of a row-major token grid (2-D ``(h, w)`` or 3-D
    ``(t, h, w)``); axis ``i`` of ``n`` axes fills channels ``[i * dim / n, (i + 1) * dim / n)``."""
    n = len(grid)
    if dim % (2 * n):
        raise ConfigError(f"width {dim} must be divisible by {2 * n} for {n}-D sincos positions")
    axes = torch.meshgrid(*[torch.arange(g) for g in grid], indexing="ij")
    parts = [sincos_1d(a.reshape(-1), dim // n) for a in axes]
    return torch.cat(parts, -1)


class PatchEmbed(nn.Module):
    """``(B, C, H, W)`` -> ``(B, N, D)`` tokens of ``patch x patch`` patches, row-major.

    Args:
        image_size: ``(H, W)`` (or one int for square images).
        patch: patch side.
        in_channels: ``C``.
        dim: token width ``D``.
        positions: add fixed 2-D sincos positions (``sincos``) or nothing (``none``).
    """

    pos: Tensor | None

    def __init__(
        self,
        image_size: int | Sequence[int],
        patch: int,
        in_channels: int,
        dim: int,
        positions: str = "sincos",
    ) -> None:
        super().__init__()
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if size[0] % patch or size[1] % patch:
            raise ConfigError(f"image_size {size} must be divisible by patch={patch}")
        self.grid = (size[0] // patch, size[1] // patch)
        self.num_tokens = self.grid[0] * self.grid[1]
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.image_size, self.in_channels = size, in_channels
        _register_positions(self, positions, self.grid, dim)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != (self.in_channels, *self.image_size):
            raise ShapeError(
                f"images must be (B, {self.in_channels}, {self.image_size[0]}, "
                f"{self.image_size[1]}), got {tuple(x.shape)}"
            )
        tokens = self.proj(x).flatten(2).transpose(1, 2)
        return tokens if self.pos is None else tokens + self.pos


class TubeletEmbed(nn.Module):
    """``(B, C, T, H, W)`` -> ``(B, N, D)`` tokens of ``tubelet x patch x patch`` tubelets,
    ordered by time, then rows, then columns.

    Args:
        frames: ``T`` (divisible by ``tubelet``).
        image_size: ``(H, W)`` (or one int).
        patch: spatial patch side.
        tubelet: temporal extent of a token.
        in_channels: ``C``.
        dim: token width ``D``.
        positions: add fixed 3-D sincos positions (``sincos``) or nothing (``none``).
    """

    pos: Tensor | None

    def __init__(
        self,
        frames: int,
        image_size: int | Sequence[int],
        patch: int,
        tubelet: int,
        in_channels: int,
        dim: int,
        positions: str = "sincos",
    ) -> None:
        super().__init__()
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if frames % tubelet or size[0] % patch or size[1] % patch:
            raise ConfigError(
                f"frames={frames} must be divisible by tubelet={tubelet} and image_size {size} "
                f"by patch={patch}"
            )
        self.grid = (frames // tubelet, size[0] // patch, size[1] // patch)
        self.num_tokens = self.grid[0] * self.grid[1] * self.grid[2]
        self.tokens_per_frame = self.grid[1] * self.grid[2]
        kernel = (tubelet, patch, patch)
        self.proj = nn.Conv3d(in_channels, dim, kernel, stride=kernel)
        self.video_shape = (in_channels, frames, *size)
        _register_positions(self, positions, self.grid, dim)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.video_shape:
            raise ShapeError(
                f"videos must be (B, {', '.join(map(str, self.video_shape))}) as (B, C, T, H, W), "
                f"got {tuple(x.shape)}"
            )
        tokens = self.proj(x).flatten(2).transpose(1, 2)
        return tokens if self.pos is None else tokens + self.pos


def _register_positions(module: nn.Module, kind: str, grid: Sequence[int], dim: int) -> None:
    if kind not in ("sincos", "none"):
        raise ConfigError(f"unknown positions {kind!r}; expected 'sincos' or 'none'")
    pos = sincos_positions(grid, dim) if kind == "sincos" else None
    module.register_buffer("pos", pos, persistent=False)
