"""Shape arithmetic of the GameGAN networks, checked when the config is built (no torch import).

A size the networks cannot produce (a frame side the renderer cannot reach, a sequence too short
for the temporal discriminator's strided 3-D convolutions) is a ``ConfigError`` naming the field,
not a shape error deep in a forward pass.
"""

from __future__ import annotations

import math
from typing import Any

from worldflux.errors import ConfigError


def residual_blocks(image_size: int, bottom_width: int) -> int:
    """Doubling blocks from ``bottom_width`` to ``image_size``, or -1 if it is not reachable."""
    if bottom_width < 1 or image_size < 2 * bottom_width:
        return -1
    n = round(math.log2(image_size / bottom_width))
    return n if bottom_width * 2**n == image_size else -1


def simple_blocks(image_size: int, bottom_width: int) -> int:
    """Transposed-conv blocks that draw ``image_size`` from ``bottom_width``, or -1.

    The first block adds a stride-1 3x3 transposed conv (+2), each block doubles minus one, and
    the output conv (2x2) takes one away: 7 -> 9 -> 17 -> 33 -> 65 -> 64.
    """
    side, n = bottom_width + 2, 0
    while side - 1 < image_size:
        side, n = 2 * side - 1, n + 1
    return n if n >= 1 and side - 1 == image_size else -1


def simple_d_convs(image_size: int) -> int:
    """Strided convs of the simple discriminator that reach a 3x3 map exactly, or -1."""
    side, n = (image_size - 4) // 2 + 1, 1
    while side > 3:
        side, n = (side - 3) // 2 + 1, n + 1
    return n if side == 3 and n >= 2 else -1


def temporal_lengths(length: int, window: int, simple: bool) -> list[int]:
    """Output lengths of each temporal level the discriminator runs on ``length`` frames."""
    levels = 1 + (window >= 12) + (window >= 18)
    if simple:
        levels = min(levels, 1 + (window > 6) + (window > 18))
        stages = [((2, 1), (3, 2)), ((3, 2),), ((3, 2),)]
        heads = [(2, 2), (2, 1), (3, 1)]
    else:
        stages = [((2, 1), (3, 2)), ((3, 1),), ((3, 2),)]
        heads = [(2, 1), (3, 1), (2, 1) if window in (18, 28) else (4, 2)]
    out, t = [], length
    for level in range(levels):
        for k, s in stages[level]:
            t = (t - k) // s + 1
        k, s = heads[level]
        out.append((t - k) // s + 1)
    return out


def check_sizes(c: Any) -> None:
    """Raise ``ConfigError`` if the networks of config ``c`` cannot be built or run."""
    shape = list(c.obs_shape)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(f"obs_shape must be a square image [C, S, S], got {shape}")
    side = int(shape[1])
    if c.simple_blocks:
        if simple_blocks(side, c.bottom_width) < 1:
            raise ConfigError(
                f"bottom_width {c.bottom_width} cannot reach a {side}x{side} frame with the simple "
                "renderer (side -> 2 side - 1 per block, minus 1); 7 gives 64"
            )
        if simple_d_convs(side) < 1:
            raise ConfigError(
                f"the simple discriminator needs a frame side reaching 3x3, got {side}"
            )
    else:
        if residual_blocks(side, c.bottom_width) < 1:
            raise ConfigError(
                f"obs_shape side {side} must be bottom_width ({c.bottom_width}) times a power of 2"
            )
        if side < 8 or 2 ** round(math.log2(side)) != side:
            raise ConfigError(f"the BigGAN discriminator needs a power-of-2 side >= 8, got {side}")
        if c.g_attention and c.num_components == 1 and c.nfilter_g * 2 < 8:
            raise ConfigError(f"g_attention needs nfilter_g >= 4, got {c.nfilter_g}")
    state_dim = c.memory_dim if c.memory else c.hidden_dim
    if state_dim < 8:
        raise ConfigError(
            f"the frame encoder needs {'memory_dim' if c.memory else 'hidden_dim'} >= 8"
        )
    if c.memory and math.isqrt(c.memory_cells) ** 2 != c.memory_cells:
        raise ConfigError(
            f"memory_cells must be a square number (a square grid), got {c.memory_cells}"
        )
    if c.num_components > 1:
        n = (
            simple_blocks(side, c.bottom_width)
            if c.simple_blocks
            else residual_blocks(side, c.bottom_width)
        )
        if c.spade_index >= n:
            raise ConfigError(f"spade_index must be < the {n} renderer blocks, got {c.spade_index}")
    lengths = temporal_lengths(c.batch_length, c.temporal_window, c.simple_blocks)
    if c.batch_length > 4 and min(lengths) < 1:
        raise ConfigError(
            f"batch_length {c.batch_length} is too short for the temporal discriminator of "
            f"temporal_window {c.temporal_window} (level outputs {lengths}); use longer sequences "
            "or a smaller temporal_window"
        )
