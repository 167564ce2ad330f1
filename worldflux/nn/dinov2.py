"""DINOv2 vision transformers (Oquab et al. 2023), frozen feature extractors, with weight loading.

The architecture and the state-dict layout are those of facebookresearch/dinov2
(``dinov2/models/vision_transformer.py`` ``DinoVisionTransformer`` and ``dinov2/layers``,
facts only): a 14-pixel patch embedding, a class token, learned positions for a 37 x 37 grid
(518-pixel pretraining) interpolated bicubically to the input grid, pre-norm blocks with
layer-scale, and a final LayerNorm. ``forward_features`` returns the normalised patch tokens
(``x_norm_patchtokens``), what DINO-WM plans on. Weights load from a local file or the torch hub
cache (``dinov2_vits14_pretrain.pth``) with :func:`load_dinov2`; nothing is downloaded.

Axis legend: ``B`` batch, ``N`` patches, ``D`` width, ``C, H, W`` image channels, height, width.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.errors import ModelFileError, ShapeError

log = logging.getLogger(__name__)
_WARNED: set[str] = set()  # the "random encoder" warning is logged once per file and process

#: ``name: (width, depth, heads)`` of the released DINOv2 backbones without registers.
SIZES = {"vits14": (384, 12, 6), "vitb14": (768, 12, 12), "vitl14": (1024, 24, 16)}
#: File name of each backbone's weights in the torch hub cache (``checkpoints/``).
HUB_FILES = {name: f"dinov2_{name}_pretrain.pth" for name in SIZES}


class LayerScale(nn.Module):
    """Per-channel scale ``gamma`` of a residual branch."""

    def __init__(self, dim: int, init: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, 4 * dim)
        self.ls2 = LayerScale(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoV2(nn.Module):
    """A DINOv2 ViT (state-dict keys as the official ``DinoVisionTransformer``).

    Args:
        size: ``"vits14"`` (ViT-S/14, 22,056,576 parameters), ``"vitb14"`` or ``"vitl14"``.
        img_size: pretraining resolution (518: a 37 x 37 grid of learned positions).
        frozen: no gradients and always in eval mode (a fixed feature extractor).
    """

    patch_size = 14

    def __init__(self, size: str = "vits14", img_size: int = 518, frozen: bool = True) -> None:
        super().__init__()
        if size not in SIZES:
            raise ShapeError(f"DinoV2 size must be one of {sorted(SIZES)}, got {size!r}")
        dim, depth, heads = SIZES[size]
        self.size, self.embed_dim, self.frozen = size, dim, frozen
        self.grid = img_size // self.patch_size
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, self.patch_size, self.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid**2, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # unused here; kept for the layout
        self.blocks = nn.ModuleList([_Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if frozen:
            self.requires_grad_(False)

    def train(self, mode: bool = True) -> DinoV2:
        return super().train(mode and not self.frozen)

    def _positions(self, h: int, w: int) -> Tensor:
        """Learned positions ``(1, 1 + h * w, D)`` for an ``h x w`` patch grid."""
        if (h, w) == (self.grid, self.grid):
            return self.pos_embed
        cls, patch = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        m = self.grid
        patch = patch.reshape(1, m, m, -1).permute(0, 3, 1, 2).float()
        # DINOv2 interpolates with a scale factor offset by 0.1 (interpolate_offset), which
        # sets the sampling positions; the output size is the input grid.
        scale = ((h + 0.1) / m, (w + 0.1) / m)
        patch = F.interpolate(patch, scale_factor=scale, mode="bicubic", antialias=False)
        patch = patch.to(self.pos_embed.dtype).permute(0, 2, 3, 1).reshape(1, h * w, -1)
        return torch.cat([cls, patch], 1)

    def forward_features(self, x: Tensor) -> Tensor:
        """Normalised patch tokens ``(B, N, D)`` of images ``(B, 3, H, W)`` (sides multiple of 14)."""
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[-1] % 14 or x.shape[-2] % 14:
            raise ShapeError(
                f"DinoV2 takes images (B, 3, H, W) with H and W multiples of 14, got "
                f"{tuple(x.shape)}"
            )
        h, w = x.shape[-2] // 14, x.shape[-1] // 14
        tokens = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], 1)
        tokens = tokens + self._positions(h, w)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, 1:]

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)


def hub_weights(size: str = "vits14") -> Path:
    """Where torch hub caches the official weights of ``size`` (the file may be absent)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / HUB_FILES[size]


def load_dinov2(
    model: DinoV2, weights: str | os.PathLike[str] | None = None, *, warn: bool = True
) -> bool:
    """Load official DINOv2 weights into ``model`` from ``weights`` or the torch hub cache.

    Args:
        model: the backbone.
        weights: a ``.pth``/``.pt`` state dict in the official key layout, or a
            ``.safetensors`` file; ``None`` looks in the hub cache (:func:`hub_weights`).
        warn: log once when no weights are found (the encoder stays random).

    Returns:
        Whether weights were loaded.

    Raises:
        ModelFileError: ``weights`` names a missing file, or the file's keys or shapes do not
            fit (every missing, unexpected and mismatched key is named).
    """
    path = Path(weights) if weights is not None else hub_weights(model.size)
    if not path.is_file():
        if weights is not None:
            raise ModelFileError(path, "the DINOv2 weights file does not exist")
        if warn and str(path) not in _WARNED:
            _WARNED.add(str(path))
            log.warning(
                "no DINOv2 %s weights in %s: the frozen encoder is RANDOM (put the official "
                "checkpoint there or pass its path)",
                model.size,
                path,
            )
        return False
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
            raise ModelFileError(path, f"cannot read DINOv2 weights: {err}") from None
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        raise ModelFileError(
            path,
            f"not a DINOv2 {model.size} state dict: missing keys {missing[:8]}, "
            f"unexpected keys {unexpected[:8]}, mismatched shapes {mismatched[:8]}",
        )
    model.load_state_dict(state)
    log.info("loaded DINOv2 %s weights from %s", model.size, path)
    return True
