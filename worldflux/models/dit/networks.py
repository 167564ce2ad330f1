"""The Conditional Diffusion Transformer (CDiT) of Navigation World Models.

Bar, Zhou, Tran, Darrell & LeCun, "Navigation World Models", CVPR 2025; reference
implementation facebookresearch/nwm @ 3f6cd8e (``models.py``), itself built on DiT (Peebles &
Xie 2023). Parameter names and shapes follow the reference's state dict exactly (``x_embedder``,
``t_embedder``, ``y_embedder``, ``pos_embed``, ``blocks.i.{attn,cttn,adaLN_modulation,mlp}``,
``final_layer``, ``time_embedder``), so its checkpoints load without renaming.

A CDiT block runs, on the target frame's tokens ``x``, with adaLN-Zero modulation from the
condition ``c`` (diffusion step + action + relative time): self-attention over ``x``;
cross-attention from ``x`` to the (modulated, normalised) context tokens, with learned extra
key/value biases (``add_bias_kv``); an MLP with tanh-GELU. All attention goes through
``scaled_dot_product_attention``.

Axis legend: ``B`` batch, ``K`` context frames, ``C`` latent channels, ``Hh, W`` latent height and
width, ``N`` tokens per frame, ``D`` width, ``A`` action size, ``P`` patch side.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.errors import ConfigError, ShapeError
from worldflux.models.dit.config import POS_EMBED_INITS
from worldflux.nn.transformer import Attention, modulate
from worldflux.nn.vit import sincos_positions


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Cosine-then-sine embeddings ``(B, dim)`` of scalar (possibly fractional) ``t (B, 1)``.

    The cosine half comes first (GLIDE's layout, which DiT and NWM keep).
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t.float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], -1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], -1)
    return emb


class TimestepEmbedder(nn.Module):
    """A scalar to a ``hidden`` vector: sinusoidal features, then Linear-SiLU-Linear."""

    def __init__(self, hidden: int, frequency_dim: int = 256) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(
            nn.Linear(frequency_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden)
        )

    def forward(self, t: Tensor) -> Tensor:
        """``t (B, 1)`` -> ``(B, hidden)``."""
        return self.mlp(timestep_embedding(t, self.frequency_dim))


_ACTION_NAMES = ("x_emb", "y_emb", "angle_emb")


class ActionEmbedder(nn.Module):
    """Each action coordinate embedded by its own :class:`TimestepEmbedder`, concatenated.

    NWM's actions are ``(dx, dy, dyaw)``: widths ``D // 3``, ``D // 3`` and the rest, named
    ``x_emb``, ``y_emb``, ``angle_emb``. Other action sizes ``A`` generalise this: ``A - 1``
    embedders of ``D // A`` and a last one of the rest (named ``emb_i`` unless ``A == 3``).
    """

    def __init__(self, hidden: int, action_dim: int, frequency_dim: int = 256) -> None:
        super().__init__()
        if hidden < action_dim:
            raise ConfigError(f"hidden_size={hidden} must be >= action_dim={action_dim}")
        part = hidden // action_dim
        widths = [part] * (action_dim - 1) + [hidden - part * (action_dim - 1)]
        names = _ACTION_NAMES if action_dim == 3 else [f"emb_{i}" for i in range(action_dim)]
        self.names = list(names)
        for name, width in zip(self.names, widths):
            self.add_module(name, TimestepEmbedder(width, frequency_dim))

    def forward(self, action: Tensor) -> Tensor:
        """``action (B, A)`` -> ``(B, D)``."""
        parts = [getattr(self, n)(action[..., i : i + 1]) for i, n in enumerate(self.names)]
        return torch.cat(parts, -1)


class PatchEmbed(nn.Module):
    """Non-overlapping ``P x P`` patches to tokens (a strided convolution, as timm's PatchEmbed)."""

    def __init__(self, input_size: int, patch: int, in_channels: int, hidden: int) -> None:
        super().__init__()
        if input_size % patch:
            raise ConfigError(f"latent size {input_size} must be divisible by patch_size={patch}")
        self.patch, self.grid = patch, input_size // patch
        self.num_patches = self.grid**2
        self.proj = nn.Conv2d(in_channels, hidden, patch, stride=patch)

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, C, Hh, W)`` -> ``(B, N, D)``."""
        return self.proj(x).flatten(2).transpose(1, 2)


class CrossAttention(nn.Module):
    """Multi-head cross-attention with ``nn.MultiheadAttention``'s parameter layout.

    ``in_proj_weight/in_proj_bias`` hold the query, key and value projections stacked;
    ``bias_k, bias_v`` are one learned key/value token appended to the projected context
    (``add_bias_kv=True``), so the queries can always attend somewhere.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"hidden_size={dim} must be divisible by num_heads={heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.bias_k = nn.Parameter(torch.empty(1, 1, dim))
        self.bias_v = nn.Parameter(torch.empty(1, 1, dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.xavier_normal_(self.bias_k)
        nn.init.xavier_normal_(self.bias_v)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        """``x (B, N, D)`` attends to ``context (B, S, D)`` -> ``(B, N, D)``."""
        b, n, d = x.shape
        wq, wk, wv = self.in_proj_weight.chunk(3)
        bq, bk, bv = self.in_proj_bias.chunk(3)
        q, k, v = F.linear(x, wq, bq), F.linear(context, wk, bk), F.linear(context, wv, bv)
        k = torch.cat([k, self.bias_k.expand(b, 1, d)], 1)
        v = torch.cat([v, self.bias_v.expand(b, 1, d)], 1)

        def heads(t: Tensor) -> Tensor:
            return t.view(b, t.shape[1], self.heads, self.head_dim).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v))
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """``fc1`` - tanh-GELU - ``fc2`` (timm's ``Mlp`` layout)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, N, D)`` -> ``(B, N, D)``."""
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


def _norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)


class CDiTBlock(nn.Module):
    """Self-attention, cross-attention to the context, MLP; adaLN-Zero with 11 modulations."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3, self.norm_cond = (_norm(dim) for _ in range(4))
        self.attn = Attention(dim, heads, qkv_bias=True)
        self.cttn = CrossAttention(dim, heads)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 11 * dim))
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, c: Tensor, context: Tensor) -> Tensor:
        """``x (B, N, D)``, ``c (B, D)``, ``context (B, K*N, D)`` -> ``(B, N, D)``."""
        (s_msa, c_msa, g_msa, s_ctx, c_ctx, s_ca, c_ca, g_ca, s_mlp, c_mlp, g_mlp) = (
            self.adaLN_modulation(c).chunk(11, -1)
        )
        no_positions = torch.empty(0, dtype=torch.long, device=x.device)  # no rotary embedding
        x = x + g_msa.unsqueeze(1) * self.attn(
            modulate(self.norm1(x), s_msa, c_msa), None, no_positions
        )
        ctx = modulate(self.norm_cond(context), s_ctx, c_ctx)
        x = x + g_ca.unsqueeze(1) * self.cttn(modulate(self.norm2(x), s_ca, c_ca), ctx)
        return x + g_mlp.unsqueeze(1) * self.mlp(modulate(self.norm3(x), s_mlp, c_mlp))


class FinalLayer(nn.Module):
    """Modulated final norm and a linear map to ``P * P * C_out`` values per token."""

    def __init__(self, dim: int, patch: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = _norm(dim)
        self.linear = nn.Linear(dim, patch * patch * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        """``x (B, N, D)``, ``c (B, D)`` -> ``(B, N, P*P*C_out)``."""
        shift, scale = self.adaLN_modulation(c).chunk(2, -1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class CDiT(nn.Module):
    """The CDiT denoiser: predicts the noise (and the variance interpolation) of the next frame.

    Args:
        input_size: latent side ``Hh = W`` (28 for 224 px frames through the SD VAE).
        context_size: context frames ``K``.
        patch_size: patch side ``P``.
        in_channels: latent channels ``C``.
        action_dim: action size ``A`` (3 in NWM: dx, dy, dyaw).
        hidden_size, depth, num_heads, mlp_ratio: transformer width, blocks, heads, MLP ratio.
        learn_sigma: also output the variance interpolation (``2 C`` output channels).
        pos_embed_init: start of the learned positional embedding: ``"normal"`` (N(0, 0.02),
            NWM's) or ``"sincos"`` (DiT's 2-D sin-cos positions over the patch grid in every
            frame, plus NWM's N(0, 0.02), which tells the frames apart).
    """

    def __init__(
        self,
        input_size: int,
        context_size: int,
        patch_size: int,
        in_channels: int,
        action_dim: int,
        hidden_size: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        learn_sigma: bool = True,
        pos_embed_init: str = "normal",
    ) -> None:
        super().__init__()
        if pos_embed_init not in POS_EMBED_INITS:
            raise ConfigError(
                f"pos_embed_init must be one of {POS_EMBED_INITS}, got {pos_embed_init!r}"
            )
        self.pos_embed_init = pos_embed_init
        self.context_size, self.in_channels, self.input_size = context_size, in_channels, input_size
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.patch_size = patch_size
        self.x_embedder = PatchEmbed(input_size, patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = ActionEmbedder(hidden_size, action_dim)
        n = self.x_embedder.num_patches
        self.pos_embed = nn.Parameter(torch.zeros(context_size + 1, n, hidden_size))
        self.blocks = nn.ModuleList(
            CDiTBlock(hidden_size, num_heads, mlp_ratio) for _ in range(depth)
        )
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)
        self.time_embedder = TimestepEmbedder(hidden_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """NWM's initialisation: Xavier linears, N(0, 0.02) embedders, zero adaLN and output."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.pos_embed, std=0.02)
        if self.pos_embed_init == "sincos":
            with torch.no_grad():
                grid = self.x_embedder.grid
                self.pos_embed.add_(sincos_positions((grid, grid), self.pos_embed.shape[-1]))
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        embedders = [getattr(self.y_embedder, n) for n in self.y_embedder.names]
        for emb in [*embedders, self.t_embedder, self.time_embedder]:
            nn.init.normal_(emb.mlp[0].weight, std=0.02)
            nn.init.normal_(emb.mlp[2].weight, std=0.02)
        for block in self.blocks:  # adaLN-Zero: every block starts as the identity
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        for layer in (self.final_layer.adaLN_modulation[-1], self.final_layer.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def unpatchify(self, x: Tensor) -> Tensor:
        """``(B, N, P*P*C_out)`` -> ``(B, C_out, Hh, W)``."""
        b, p, c, g = x.shape[0], self.patch_size, self.out_channels, self.x_embedder.grid
        x = x.reshape(b, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(b, c, g * p, g * p)

    def forward(
        self, x: Tensor, t: Tensor, action: Tensor, context: Tensor, rel_t: Tensor
    ) -> Tensor:
        """Denoiser output ``(B, C_out, Hh, W)``.

        Args:
            x: noisy target latent ``(B, C, Hh, W)``.
            t: diffusion steps ``(B,)`` (integers of the 1000-step process).
            action: ``(B, A)``.
            context: clean context latents ``(B, K, C, Hh, W)``.
            rel_t: relative time offset of the target ``(B,)``.
        """
        k, c, s = self.context_size, self.in_channels, self.input_size
        if x.shape[1:] != (c, s, s):
            raise ShapeError(f"x must be (B, {c}, {s}, {s}), got {tuple(x.shape)}")
        if context.dim() != 5 or context.shape[1:] != (k, c, s, s):
            raise ShapeError(
                f"context must be (B, K={k}, {c}, {s}, {s}) latents, got {tuple(context.shape)}"
            )
        b = x.shape[0]
        tokens = self.x_embedder(x) + self.pos_embed[k:]
        ctx = self.x_embedder(context.flatten(0, 1)).unflatten(0, (b, k)) + self.pos_embed[:k]
        ctx = ctx.flatten(1, 2)
        cond = (
            self.t_embedder(t[..., None])
            + self.time_embedder(rel_t[..., None])
            + self.y_embedder(action)
        )
        for block in self.blocks:
            tokens = block(tokens, cond, ctx)
        return self.unpatchify(self.final_layer(tokens, cond))
