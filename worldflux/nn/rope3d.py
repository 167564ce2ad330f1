"""3-D rotary positions for video tokens, and a pre-norm ViT block that uses them.

V-JEPA 2 (Assran et al. 2025; facebookresearch/vjepa2 ``src/models/utils/modules.py`` @ c2963a4,
facts only) has no position parameters: each attention head splits its ``Dh`` channels into three
equal even-sized parts (``2 * ((Dh // 3) // 2)`` channels each) rotated by the token's frame,
row and column index; channels left over (``Dh`` not divisible by 6) are not rotated.

Within one part of ``P`` channels, adjacent channel pairs ``(2i, 2i + 1)`` are rotated, but the
released models use the frequency of channel index ``j`` as ``omega[j mod (P / 2)]`` with
``omega[k] = 10000 ** (-k / (P / 2))`` (the first half of the channels takes every frequency once,
the second half again), not the textbook ``omega[j // 2]``. The reference keeps this layout for
compatibility with its checkpoints, so this module does the same.

A token at position 0 on an axis is not rotated on that axis; V-JEPA 2-AC's action and state
tokens therefore carry their frame index and row/column 0.

Axis legend: ``B`` batch, ``H`` heads, ``L`` tokens, ``Dh`` head width, ``D`` token width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from worldflux.errors import ConfigError, ShapeError
from worldflux.nn.transformer import Attention


def grid_positions(ids: Tensor, height: int, width: int) -> Tensor:
    """``(..., 3)`` float (frame, row, column) of flat token ids in a ``(T, height, width)`` grid."""
    per_frame = height * width
    frame = ids // per_frame
    rest = ids - frame * per_frame
    row = rest // width
    col = rest - row * width
    return torch.stack([frame, row, col], -1).float()


class Rotary3D(nn.Module):
    """Rotate per-head queries or keys by (frame, row, column) positions, V-JEPA 2's layout.

    Args:
        head_dim: ``Dh`` (at least 6, so that each axis gets a channel pair).
        base: frequency base.
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        self.part = 2 * ((head_dim // 3) // 2)
        if self.part < 2:
            raise ConfigError(f"3-D rotary positions need a head width >= 6, got {head_dim}")
        self.head_dim, self.base = head_dim, float(base)

    def _rotate(self, x: Tensor, pos: Tensor) -> Tensor:
        half = self.part // 2
        omega = torch.arange(half, dtype=x.dtype, device=x.device) / half
        omega = 1.0 / self.base**omega
        index = torch.arange(self.part, device=x.device) % half  # the released layout, see above
        angles = pos.to(x.dtype)[..., None] * omega[index]  # (..., L, P)
        if angles.dim() == 3:  # per-sample positions (B, L, P): broadcast over heads
            angles = angles[:, None]
        pairs = x.unflatten(-1, (-1, 2))
        turned = torch.stack((-pairs[..., 1], pairs[..., 0]), -1).flatten(-2)
        return x * angles.cos() + turned * angles.sin()

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """``x (B, H, L, Dh)`` rotated by ``positions (L, 3)`` or per sample ``(B, L, 3)``."""
        if positions.shape[-1] != 3 or positions.shape[-2] != x.shape[-2]:
            raise ShapeError(
                f"3-D rotary positions must be (L, 3) or (B, L, 3) with L={x.shape[-2]}, got "
                f"{tuple(positions.shape)}"
            )
        p, parts = self.part, []
        for axis in range(3):
            parts.append(self._rotate(x[..., axis * p : (axis + 1) * p], positions[..., axis]))
        parts.append(x[..., 3 * p :])
        return torch.cat(parts, -1)


class MLP(nn.Module):
    """``fc1 -> GELU -> fc2`` (the ViT MLP, named as in timm and V-JEPA 2)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class RoPEBlock(nn.Module):
    """Pre-norm ViT block with 3-D rotary attention (SDPA) and a GELU MLP.

    Parameter names (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``,
    ``mlp.fc2``) follow timm/V-JEPA 2, so official state dicts map one to one.

    Args:
        dim: token width ``D``.
        heads: attention heads.
        mlp_dim: hidden width of the MLP.
        eps: LayerNorm epsilon.
    """

    def __init__(self, dim: int, heads: int, mlp_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, mlp_dim)

    def forward(
        self, x: Tensor, positions: Tensor, rope: Rotary3D, mask: Tensor | None = None
    ) -> Tensor:
        """``x (B, L, D)``; ``positions (L, 3)`` or ``(B, L, 3)``; ``mask (L, L)`` True = attend."""
        x = x + self.attn(self.norm1(x), mask, positions, rope)
        return x + self.mlp(self.norm2(x))
