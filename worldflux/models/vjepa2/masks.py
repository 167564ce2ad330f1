"""V-JEPA's multi-block masking of a video token grid (context and prediction targets).

Procedure (facebookresearch/vjepa2 ``src/masks/multiseq_multiblock3d.py`` @ c2963a4, facts only):
one mask generator per (number of blocks, spatial scale) pair; for every batch it draws one block
size (a fraction ``scale`` of the ``rows x cols`` patches, aspect ratio uniform in
``aspect_ratio``, all time steps since the temporal scale is 1), then per sample places
``num_blocks`` such blocks at uniform positions. The union of the blocks is the prediction
target, the rest the context; every sample keeps the batch's smallest count of each (a sample
whose blocks cover everything is redrawn), so the masks stack into ``(B, K)`` and ``(B, M)``.
V-JEPA 2 uses 8 blocks at scale 0.15 and 2 blocks at scale 0.7, aspect ratio in ``[0.75, 1.5]``.

Axis legend: ``B`` batch, ``K`` context tokens, ``M`` target tokens.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from worldflux.errors import ShapeError


def block_size(
    grid: tuple[int, int, int], scale: float, aspect: tuple[float, float], gen: torch.Generator
) -> tuple[int, int]:
    """``(h, w)`` of the blocks one generator places in this batch."""
    _, rows, cols = grid
    keep = int(rows * cols * scale)
    ratio = aspect[0] + float(torch.rand(1, generator=gen)) * (aspect[1] - aspect[0])
    h = min(rows, int(round(math.sqrt(keep * ratio))))
    w = min(cols, int(round(math.sqrt(keep / ratio))))
    return max(h, 1), max(w, 1)


def multiblock_masks(
    batch: int,
    grid: tuple[int, int, int],
    num_blocks: int,
    scale: float,
    aspect: tuple[float, float],
    gen: torch.Generator,
    max_tries: int = 100,
) -> tuple[Tensor, Tensor]:
    """Context ids ``(B, K)`` and target ids ``(B, M)`` of one mask generator, on the CPU."""
    depth, rows, cols = grid
    h, w = block_size(grid, scale, aspect, gen)
    contexts, targets = [], []
    for _ in range(batch):
        for _ in range(max_tries):
            keep = torch.ones(depth, rows, cols, dtype=torch.bool)
            for _ in range(num_blocks):
                top = int(torch.randint(0, rows - h + 1, (1,), generator=gen))
                left = int(torch.randint(0, cols - w + 1, (1,), generator=gen))
                keep[:, top : top + h, left : left + w] = False
            flat = keep.flatten()
            if flat.any():
                break
        else:
            raise ShapeError(
                f"{num_blocks} blocks of {h}x{w} patches cover the whole {rows}x{cols} grid in "
                f"{max_tries} draws; lower the mask scale or the number of blocks"
            )
        contexts.append(torch.nonzero(flat).squeeze(1))
        targets.append(torch.nonzero(~flat).squeeze(1))
    k = min(len(c) for c in contexts)
    m = min(len(t) for t in targets)
    return torch.stack([c[:k] for c in contexts]), torch.stack([t[:m] for t in targets])
