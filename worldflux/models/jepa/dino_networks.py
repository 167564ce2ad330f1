"""DINO-WM's trainable networks: the frame-causal ViT predictor, the 1x1-conv action and
proprioception encoders, and the VQ-VAE-style decoder used without quantisation.

Architecture facts from gaoyuezhou/dino_wm @ 0a9492f (``models/vit.py`` ``ViTPredictor``,
``models/proprio.py`` ``ProprioceptiveEmbedding``, ``models/vqvae.py`` ``VQVAE`` with
``quantize: False``; configs ``conf/predictor/vit.yaml``, ``conf/decoder/vqvae.yaml``): pre-norm
blocks whose attention has ``heads x dim_head`` inner width and no qkv bias, a GELU MLP, learned
positions for ``frames x patches`` tokens, a final LayerNorm, and a block-causal mask so that a
frame's tokens see their own and earlier frames only. Torch's default initialisation (the
positions ``randn``), as in the reference.

Axis legend: ``B`` batch, ``T`` frames, ``P`` patches per frame, ``D`` token width, ``E`` DINO
feature width, ``C, H, W`` image channels, height, width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.errors import ShapeError


def frame_causal_mask(patches: int, frames: int) -> Tensor:
    """Boolean ``(T P, T P)`` mask: token of frame ``i`` attends to frames ``<= i``."""
    frame = torch.arange(frames).repeat_interleave(patches)
    return frame[:, None] >= frame[None, :]


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        b, n, _ = x.shape
        q, k, v = self.to_qkv(self.norm(x)).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        drop = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class _FeedForward(nn.Sequential):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__(
            nn.LayerNorm(dim),
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )


class FrameCausalViT(nn.Module):
    """DINO-WM's predictor over ``frames x patches`` tokens of width ``dim``.

    Args:
        dim: token width (runtime: DINO width + proprio and action embedding sizes, 404).
        patches: patches per frame (runtime, 196).
        frames: history length (runtime, 3).
        depth, heads, dim_head, mlp_dim: transformer sizes (6, 16, 64, 2048).
        dropout: dropout inside attention and MLP (0.1); emb_dropout: after the positions (0).
    """

    def __init__(
        self,
        dim: int,
        patches: int,
        frames: int,
        depth: int = 6,
        heads: int = 16,
        dim_head: int = 64,
        mlp_dim: int = 2048,
        dropout: float = 0.1,
        emb_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.patches, self.frames = patches, frames
        self.pos_embedding = nn.Parameter(torch.randn(1, frames * patches, dim))
        self.emb_dropout = nn.Dropout(emb_dropout)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [_Attention(dim, heads, dim_head, dropout), _FeedForward(dim, mlp_dim, dropout)]
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.register_buffer("mask", frame_causal_mask(patches, frames), persistent=False)

    def forward(self, z: Tensor) -> Tensor:
        """Predicted next-frame tokens ``(B, T, P, D)`` of ``z (B, T, P, D)``, ``T <= frames``."""
        b, t, p, d = z.shape
        if p != self.patches or t > self.frames:
            raise ShapeError(
                f"the predictor takes at most {self.frames} frames of {self.patches} patches, "
                f"got {t} frames of {p}"
            )
        n = t * p
        x = self.emb_dropout(z.reshape(b, n, d) + self.pos_embedding[:, :n])
        mask = self.mask[:n, :n]
        for attn, ff in self.layers:  # type: ignore[misc]
            x = attn(x, mask) + x
            x = ff(x) + x
        return self.norm(x).reshape(b, t, p, d)


class ProprioEmbedding(nn.Module):
    """``Conv1d`` with kernel 1 from ``in_dim`` to ``emb_dim`` per frame (actions, proprio)."""

    def __init__(self, in_dim: int, emb_dim: int) -> None:
        super().__init__()
        self.patch_embed = nn.Conv1d(in_dim, emb_dim, kernel_size=1, stride=1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, in_dim)`` -> ``(B, T, emb_dim)``."""
        return self.patch_embed(x.transpose(1, 2)).transpose(1, 2)


class _ResBlock(nn.Module):
    def __init__(self, channel: int, hidden: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channel, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, channel, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) + x


class _Upsampler(nn.Module):
    """3x3 conv, residual blocks, ReLU, two stride-2 transposed convs (x4 resolution)."""

    def __init__(self, in_ch: int, out_ch: int, channel: int, blocks: int, res_ch: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            nn.Conv2d(in_ch, channel, 3, padding=1),
            *[_ResBlock(channel, res_ch) for _ in range(blocks)],
            nn.ReLU(),
            nn.ConvTranspose2d(channel, channel // 2, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(channel // 2, out_ch, 4, stride=2, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x)


class PatchDecoder(nn.Module):
    """Patch features ``(B, P, E)`` on a square grid to images ``(B, C, 16 g, 16 g)``.

    DINO-WM's ``VQVAE`` decoder path without quantisation: ``upsample_b`` (x4) then ``dec`` (x4).

    Args:
        emb_dim: feature width ``E`` (runtime, 384).
        out_channels: image channels (runtime, 3).
        channel, n_res_block, n_res_channel: widths (384, 4, 128).
    """

    def __init__(
        self,
        emb_dim: int,
        out_channels: int,
        channel: int = 384,
        n_res_block: int = 4,
        n_res_channel: int = 128,
    ) -> None:
        super().__init__()
        self.upsample_b = _Upsampler(emb_dim, emb_dim, channel, n_res_block, n_res_channel)
        self.dec = _Upsampler(emb_dim, out_channels, channel, n_res_block, n_res_channel)

    def forward(self, z: Tensor) -> Tensor:
        b, p, e = z.shape
        side = int(round(p**0.5))
        if side * side != p:
            raise ShapeError(f"the decoder needs a square number of patches, got {p}")
        x = z.reshape(b, side, side, e).permute(0, 3, 1, 2)
        return self.dec(self.upsample_b(x))
