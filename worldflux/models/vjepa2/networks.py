"""V-JEPA 2 networks: the video ViT encoder, the masked predictor and the action-conditioned one.

Architecture facts from facebookresearch/vjepa2 @ c2963a4 (``src/models/vision_transformer.py``,
``predictor.py``, ``ac_predictor.py``): pre-norm blocks with 3-D rotary attention
(:mod:`worldflux.nn.rope3d`), LayerNorm eps 1e-6, no position parameters, truncated-normal
initialisation (std 0.02) with the output projections of block ``l`` (1-based) divided by
``sqrt(2 l)``. Parameter names equal the reference's, so official state dicts load by key.

Axis legend: ``B`` batch, ``C`` channels, ``T`` frames (or frame steps), ``H, W`` pixels,
``N`` tokens, ``P`` tokens per frame, ``D`` width, ``A`` action size.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from worldflux.errors import ConfigError, ShapeError
from worldflux.nn.rope3d import RoPEBlock, Rotary3D, grid_positions
from worldflux.nn.transformer import attention_mask


def init_weights(module: nn.Module, blocks: nn.ModuleList, std: float) -> None:
    """The reference's initialisation: trunc-normal weights, zero biases, rescaled outputs."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv3d)):
            nn.init.trunc_normal_(m.weight, std=std, a=-2.0, b=2.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    with torch.no_grad():  # deeper blocks start smaller, as in the reference's _rescale_blocks
        for layer, block in enumerate(blocks, start=1):
            block.attn.proj.weight.div_(math.sqrt(2.0 * layer))
            block.mlp.fc2.weight.div_(math.sqrt(2.0 * layer))


class PatchEmbed3D(nn.Module):
    """``(B, C, T, H, W)`` -> ``(B, N, D)``: one convolution over ``tubelet x patch x patch``."""

    def __init__(self, in_channels: int, dim: int, patch: int, tubelet: int) -> None:
        super().__init__()
        kernel = (tubelet, patch, patch)
        self.proj = nn.Conv3d(in_channels, dim, kernel, stride=kernel)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class VideoViT(nn.Module):
    """The V-JEPA 2 encoder: tubelet embedding, RoPE blocks, final LayerNorm.

    Args:
        in_channels: ``C``.
        dim, depth, heads, mlp_dim: width, blocks, heads, MLP hidden width.
        patch, tubelet: token extent in pixels and frames.
        init_std: initialisation scale.
    """

    def __init__(
        self,
        in_channels: int,
        dim: int,
        depth: int,
        heads: int,
        mlp_dim: int,
        patch: int = 16,
        tubelet: int = 2,
        init_std: float = 0.02,
    ) -> None:
        super().__init__()
        self.dim, self.patch, self.tubelet, self.in_channels = dim, patch, tubelet, in_channels
        self.patch_embed = PatchEmbed3D(in_channels, dim, patch, tubelet)
        self.rope = Rotary3D(dim // heads)
        self.blocks = nn.ModuleList(RoPEBlock(dim, heads, mlp_dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        init_weights(self, self.blocks, init_std)

    def grid(self, video_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """Token grid ``(T / tubelet, H / patch, W / patch)`` of a ``(B, C, T, H, W)`` video."""
        if len(video_shape) != 5 or video_shape[1] != self.in_channels:
            raise ShapeError(
                f"videos must be (B, C={self.in_channels}, T, H, W), got {tuple(video_shape)}"
            )
        _, _, t, h, w = video_shape
        if t < self.tubelet or t % self.tubelet:
            raise ShapeError(
                f"a clip needs a multiple of tubelet_size={self.tubelet} frames (at least "
                f"{self.tubelet}), got {t} frames"
            )
        if h % self.patch or w % self.patch:
            raise ShapeError(f"frame size {h}x{w} must be divisible by patch_size={self.patch}")
        return t // self.tubelet, h // self.patch, w // self.patch

    def forward(self, video: Tensor, keep: Tensor | None = None) -> Tensor:
        """Tokens ``(B, N, D)`` of ``video (B, C, T, H, W)``; with ``keep (B, K)`` token ids,
        only those tokens enter the blocks (the JEPA context) and ``(B, K, D)`` comes out."""
        _, hp, wp = self.grid(tuple(video.shape))
        x = self.patch_embed(video)
        ids = torch.arange(x.shape[1], device=x.device)
        if keep is not None:
            x = torch.gather(x, 1, keep[..., None].expand(-1, -1, x.shape[-1]))
            ids = keep
        pos = grid_positions(ids, hp, wp)
        for block in self.blocks:
            x = block(x, pos, self.rope)
        return self.norm(x)


class MaskedPredictor(nn.Module):
    """The pretraining predictor: context tokens plus mask tokens at the target positions.

    Args:
        embed_dim: encoder width (input and output).
        dim, depth, heads, mlp_dim: the predictor's own sizes (narrow: 384 wide in V-JEPA 2).
        num_mask_tokens: learned mask tokens (one per mask generator and clip length).
        init_std: initialisation scale.
    """

    def __init__(
        self,
        embed_dim: int,
        dim: int,
        depth: int,
        heads: int,
        mlp_dim: int,
        num_mask_tokens: int = 6,
        init_std: float = 0.02,
    ) -> None:
        super().__init__()
        self.predictor_embed = nn.Linear(embed_dim, dim)
        # zero-initialised, as zero_init_mask_tokens in the reference's configs
        self.mask_tokens = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 1, dim)) for _ in range(num_mask_tokens)
        )
        self.rope = Rotary3D(dim // heads)
        self.predictor_blocks = nn.ModuleList(RoPEBlock(dim, heads, mlp_dim) for _ in range(depth))
        self.predictor_norm = nn.LayerNorm(dim, eps=1e-6)
        self.predictor_proj = nn.Linear(dim, embed_dim)
        init_weights(self, self.predictor_blocks, init_std)

    def forward(
        self, ctx: Tensor, keep: Tensor, target: Tensor, grid: tuple[int, int, int], mask_index: int
    ) -> Tensor:
        """Predictions ``(B, M, embed_dim)`` at target ids ``(B, M)`` from context ``(B, K, E)``
        at ids ``keep (B, K)``, using mask token ``mask_index``."""
        x = self.predictor_embed(ctx)
        b, m = target.shape
        token = self.mask_tokens[mask_index % len(self.mask_tokens)]
        x = torch.cat([x, token.expand(b, m, -1)], 1)
        ids = torch.cat([keep, target], 1)
        # tokens in grid order, as the reference sorts them before the blocks
        order = torch.argsort(ids, dim=1)
        x = torch.gather(x, 1, order[..., None].expand(-1, -1, x.shape[-1]))
        pos = grid_positions(torch.gather(ids, 1, order), grid[1], grid[2])
        for block in self.predictor_blocks:
            x = block(x, pos, self.rope)
        x = self.predictor_norm(x)
        back = torch.argsort(order, dim=1)
        x = torch.gather(x, 1, back[..., None].expand(-1, -1, x.shape[-1]))[:, keep.shape[1] :]
        return self.predictor_proj(x)


class ACPredictor(nn.Module):
    """V-JEPA 2-AC's predictor: per step an action token, a state token and the frame's tokens,
    frame-causal attention, 3-D rotary positions; predicts the next frame's encoder features.

    Args:
        embed_dim: encoder width (input and output).
        dim, depth, heads, mlp_dim: predictor sizes (1024, 24, 16, 4096 as released).
        action_dim: action (and state) size ``A``.
        grid: ``(rows, cols)`` of patches per frame.
        init_std: initialisation scale.
    """

    def __init__(
        self,
        embed_dim: int,
        dim: int,
        depth: int,
        heads: int,
        mlp_dim: int,
        action_dim: int,
        grid: tuple[int, int],
        init_std: float = 0.02,
    ) -> None:
        super().__init__()
        if action_dim < 2:
            raise ConfigError(f"V-JEPA 2-AC needs action_dim >= 2, got {action_dim}")
        self.grid, self.action_dim = (int(grid[0]), int(grid[1])), action_dim
        self.per_frame = self.grid[0] * self.grid[1]
        self.predictor_embed = nn.Linear(embed_dim, dim)
        self.action_encoder = nn.Linear(action_dim, dim)
        self.state_encoder = nn.Linear(action_dim, dim)
        # Built but unused, as in the released checkpoint (use_extrinsics=False there).
        self.extrinsics_encoder = nn.Linear(action_dim - 1, dim)
        self.rope = Rotary3D(dim // heads)
        self.predictor_blocks = nn.ModuleList(RoPEBlock(dim, heads, mlp_dim) for _ in range(depth))
        self.predictor_norm = nn.LayerNorm(dim, eps=1e-6)
        self.predictor_proj = nn.Linear(dim, embed_dim)
        init_weights(self, self.predictor_blocks, init_std)

    def positions(self, steps: int, device: torch.device) -> Tensor:
        """``(T * (2 + P), 3)`` positions: the step's index for all its tokens, and row/column
        (0 for action and state tokens, so those rotate in time only)."""
        frame = grid_positions(torch.arange(self.per_frame, device=device), *self.grid)
        frame[:, 2] *= self.grid[0] / self.grid[1]  # columns snapped to the row grid, as reference
        cond = torch.zeros(2, 3, device=device)
        one = torch.cat([cond, frame], 0)[None].repeat(steps, 1, 1)
        one[..., 0] = torch.arange(steps, device=device, dtype=one.dtype)[:, None]
        return one.flatten(0, 1)

    def forward(self, frames: Tensor, actions: Tensor, states: Tensor) -> Tensor:
        """Next-frame features ``(B, T * P, E)`` from ``frames (B, T * P, E)``, ``actions`` and
        ``states (B, T, A)`` (step ``t``'s output predicts frame ``t + 1``)."""
        b, n, _ = frames.shape
        if n % self.per_frame:
            raise ShapeError(f"frame tokens {n} are not a multiple of {self.per_frame} per frame")
        t = n // self.per_frame
        for name, v in (("actions", actions), ("states", states)):
            if v.shape != (b, t, self.action_dim):
                raise ShapeError(
                    f"{name} must be (B, T, A) = {(b, t, self.action_dim)}, got {tuple(v.shape)}"
                )
        x = self.predictor_embed(frames).view(b, t, self.per_frame, -1)
        a = self.action_encoder(actions).unsqueeze(2)
        s = self.state_encoder(states).unsqueeze(2)
        x = torch.cat([a, s, x], 2).flatten(1, 2)  # (B, T * (2 + P), D)
        ids = torch.arange(x.shape[1], device=x.device)
        mask = attention_mask("frame_causal", ids, ids, self.per_frame + 2)
        pos = self.positions(t, x.device)
        for block in self.predictor_blocks:
            x = block(x, pos, self.rope, mask)
        x = x.view(b, t, self.per_frame + 2, -1)[:, :, 2:].flatten(1, 2)
        return self.predictor_proj(self.predictor_norm(x))
