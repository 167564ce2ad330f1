"""A pre-norm transformer on ``torch.nn.functional.scaled_dot_product_attention``.

What the coming families need from one block:

* masks: ``causal`` (token ``i`` sees tokens ``<= i``; IRIS's world model over frame tokens) and
  ``frame_causal`` (block-causal over frames of ``tokens_per_frame`` tokens: a token sees every
  token of its own and earlier frames; NWM/DiT-style video and V-JEPA 2-AC's predictor);
* positions: ``learned`` or ``sinusoidal`` absolute embeddings added to the input, ``rope``
  (rotary embeddings of queries and keys, Su et al. 2021), or ``none``;
* conditioning: ``cond_dim > 0`` turns on adaLN-Zero (Peebles & Xie 2023, DiT): per block, a
  linear map of the condition gives shift, scale and gate of both sub-layers, initialised to zero
  so every block starts as the identity;
* a key-value cache (:class:`KVCache`) for autoregressive sampling: feeding a sequence in pieces
  through the cache gives the same outputs as the full sequence at once (for ``frame_causal``,
  pieces must be whole frames).

The masks are computed from absolute positions, so a cached step needs no special case.

Axis legend: ``B`` batch, ``L`` new tokens, ``S`` tokens attended (cached + new), ``D`` width,
``H`` heads, ``Dh`` head width, ``C`` condition width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.errors import ConfigError, ShapeError

MASKS = ("causal", "frame_causal", "none")
POSITIONS = ("learned", "sinusoidal", "rope", "none")


def attention_mask(
    kind: str, q_pos: Tensor, k_pos: Tensor, tokens_per_frame: int = 1
) -> Tensor | None:
    """Boolean ``(L, S)`` mask (``True`` = may attend) for query and key positions, or ``None``."""
    if kind == "none":
        return None
    if kind == "causal":
        return k_pos[None, :] <= q_pos[:, None]
    if kind == "frame_causal":
        return (k_pos[None, :] // tokens_per_frame) <= (q_pos[:, None] // tokens_per_frame)
    raise ConfigError(f"unknown attention mask {kind!r}; expected one of {MASKS}")


def sinusoidal_positions(positions: Tensor, dim: int, base: float = 10000.0) -> Tensor:
    """Sine/cosine embeddings ``(L, dim)`` of integer ``positions (L,)`` (Vaswani et al. 2017)."""
    if dim % 2:
        raise ConfigError(f"sinusoidal positions need an even width, got {dim}")
    freqs = base ** (-torch.arange(0, dim, 2, dtype=torch.float32, device=positions.device) / dim)
    angles = positions.float()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], -1)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding of per-head queries and keys (pairs of channels rotated by
    ``position * base ** (-2i / Dh)``), so that ``<rope(q, m), rope(k, n)>`` depends on
    ``m - n`` only."""

    inv_freq: Tensor

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ConfigError(f"rotary embeddings need an even head width, got {head_dim}")
        inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv, persistent=False)

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """Rotate ``x (..., L, Dh)`` by its ``positions (L,)``."""
        angles = positions.to(self.inv_freq.dtype)[:, None] * self.inv_freq[None, :]
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)
        return out.flatten(-2)


class KVCache:
    """Keys and values of every layer for autoregressive sampling, preallocated to ``max_len``.

    Args:
        layers: number of transformer blocks.
        batch, heads, head_dim, max_len: sizes of the ``(B, H, max_len, Dh)`` buffers.
        device, dtype: where the buffers live.
    """

    def __init__(
        self,
        layers: int,
        batch: int,
        heads: int,
        head_dim: int,
        max_len: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        shape = (batch, heads, max_len, head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(layers)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(layers)]
        self.max_len = max_len
        self.length = 0  # tokens stored, committed by :meth:`advance` after all layers ran

    def store(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write new ``k, v (B, H, L, Dh)`` after the stored tokens; return all ``(B, H, S, Dh)``."""
        stop = self.length + k.shape[2]
        if stop > self.max_len:
            raise ShapeError(f"KV cache holds {self.max_len} tokens; {stop} requested")
        self.keys[layer][:, :, self.length : stop] = k
        self.values[layer][:, :, self.length : stop] = v
        return self.keys[layer][:, :, :stop], self.values[layer][:, :, :stop]

    def advance(self, n: int) -> None:
        """Commit ``n`` new tokens (called once per forward pass)."""
        self.length += n

    def reset(self) -> None:
        """Forget the stored tokens (the buffers are reused)."""
        self.length = 0


class Attention(nn.Module):
    """Multi-head self-attention through ``scaled_dot_product_attention``."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"width {dim} must be divisible by heads={heads}")
        self.heads, self.head_dim, self.dropout = heads, dim // heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None,
        positions: Tensor,
        rope: RotaryEmbedding | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> Tensor:
        """``x (B, L, D)`` -> ``(B, L, D)``; ``mask (L, S)`` over cached + new keys."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if rope is not None:
            q, k = rope(q, positions), rope(k, positions)
        if cache is not None:
            k, v = cache.store(layer, k, v)
        drop = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """``x * (1 + scale) + shift`` with per-sample ``shift, scale (B, D)`` over ``x (B, L, D)``."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class TransformerBlock(nn.Module):
    """Pre-norm block: attention and MLP sub-layers, each ``x + gate * f(modulate(norm(x)))``.

    Without conditioning the norms are affine and the gates are one; with ``cond_dim > 0`` the
    norms have no affine parameters and ``ada`` (SiLU + Linear to ``6 D``, zero-initialised)
    produces the shifts, scales and gates (adaLN-Zero).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        cond_dim: int = 0,
        qkv_bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        affine = cond_dim == 0
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=affine, eps=1e-6)
        self.attn = Attention(dim, heads, qkv_bias, dropout)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=affine, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.ada = None
        if cond_dim:
            self.ada = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 6 * dim))
            nn.init.zeros_(self.ada[1].weight)
            nn.init.zeros_(self.ada[1].bias)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None,
        positions: Tensor,
        cond: Tensor | None = None,
        rope: RotaryEmbedding | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> Tensor:
        """``x (B, L, D)``, ``cond (B, C)`` (required iff built with ``cond_dim``) -> ``(B, L, D)``."""
        if self.ada is None:
            x = x + self.attn(self.norm1(x), mask, positions, rope, cache, layer)
            return x + self.mlp(self.norm2(x))
        if cond is None:
            raise ShapeError("this block was built with cond_dim > 0 and needs a condition")
        s1, c1, g1, s2, c2, g2 = self.ada(cond).chunk(6, -1)
        h = self.attn(modulate(self.norm1(x), s1, c1), mask, positions, rope, cache, layer)
        x = x + g1.unsqueeze(1) * h
        return x + g2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), s2, c2))


class Transformer(nn.Module):
    """A stack of :class:`TransformerBlock` with positions, a mask and an optional condition.

    Args:
        dim: token width ``D``.
        depth: number of blocks.
        heads: attention heads (``D`` divisible by it).
        max_len: longest sequence (learned positions and caches are sized by it).
        mlp_ratio: MLP hidden width over ``D``.
        positions: ``learned``, ``sinusoidal``, ``rope`` or ``none``.
        mask: ``causal``, ``frame_causal`` or ``none``.
        tokens_per_frame: ``K`` of the ``frame_causal`` mask.
        cond_dim: width of the adaLN-Zero condition (0: unconditioned).
        qkv_bias: biases in the query/key/value projection.
        dropout: attention and MLP dropout.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        max_len: int,
        mlp_ratio: float = 4.0,
        positions: str = "learned",
        mask: str = "causal",
        tokens_per_frame: int = 1,
        cond_dim: int = 0,
        qkv_bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if positions not in POSITIONS:
            raise ConfigError(f"unknown positions {positions!r}; expected one of {POSITIONS}")
        if mask not in MASKS:
            raise ConfigError(f"unknown attention mask {mask!r}; expected one of {MASKS}")
        if tokens_per_frame < 1 or max_len % tokens_per_frame:
            raise ConfigError(
                f"tokens_per_frame={tokens_per_frame} must be >= 1 and divide max_len={max_len}"
            )
        self.dim, self.heads, self.max_len = dim, heads, max_len
        self.positions, self.mask, self.tokens_per_frame = positions, mask, tokens_per_frame
        self.pos_emb = None
        if positions == "learned":
            self.pos_emb = nn.Parameter(torch.empty(max_len, dim))
            nn.init.trunc_normal_(self.pos_emb, std=0.02)
        self.rope = RotaryEmbedding(dim // heads) if positions == "rope" else None
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, mlp_ratio, cond_dim, qkv_bias, dropout)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, elementwise_affine=cond_dim == 0, eps=1e-6)
        self.final_ada = None
        if cond_dim:  # DiT's final layer: shift and scale of the last norm, zero-initialised
            self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 2 * dim))
            nn.init.zeros_(self.final_ada[1].weight)
            nn.init.zeros_(self.final_ada[1].bias)

    def new_cache(self, batch: int, device: torch.device | str | None = None) -> KVCache:
        """An empty :class:`KVCache` for ``batch`` sequences of up to ``max_len`` tokens."""
        dtype = next(self.parameters()).dtype
        head_dim = self.dim // self.heads
        return KVCache(len(self.blocks), batch, self.heads, head_dim, self.max_len, device, dtype)

    def forward(
        self, x: Tensor, cond: Tensor | None = None, cache: KVCache | None = None
    ) -> Tensor:
        """``x (B, L, D)`` -> ``(B, L, D)``.

        With ``cache``, ``x`` continues the cached sequence: its tokens take the next positions,
        attend to the cached tokens, and are added to the cache.
        """
        b, n, d = x.shape
        if d != self.dim:
            raise ShapeError(f"tokens must have width {self.dim}, got shape {tuple(x.shape)}")
        start = cache.length if cache is not None else 0
        if start + n > self.max_len:
            raise ShapeError(f"sequence of {start + n} tokens exceeds max_len={self.max_len}")
        k = self.tokens_per_frame
        if cache is not None and self.mask == "frame_causal" and (start % k or n % k):
            raise ShapeError(
                f"a frame-causal cache takes whole frames of {k} tokens; got {n} tokens after {start}"
            )
        q_pos = torch.arange(start, start + n, device=x.device)
        k_pos = torch.arange(0, start + n, device=x.device)
        if self.pos_emb is not None:
            x = x + self.pos_emb[start : start + n]
        elif self.positions == "sinusoidal":
            x = x + sinusoidal_positions(q_pos, d).to(x.dtype)
        mask = attention_mask(self.mask, q_pos, k_pos, k)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, q_pos, cond, self.rope, cache, i)
        if cache is not None:
            cache.advance(n)
        x = self.norm(x)
        if self.final_ada is not None:
            shift, scale = self.final_ada(cond).chunk(2, -1)
            x = modulate(x, shift, scale)
        return x
