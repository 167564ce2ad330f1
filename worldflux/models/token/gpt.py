"""IRIS's world model: a GPT over frame tokens and action tokens.

Reference: eloialonso/iris @ 24326aa, ``src/models/world_model.py``, ``transformer.py``,
``slicer.py`` (itself after minGPT). A step is a block of ``K + 1`` tokens, the frame's ``K``
codebook ids then the action id; the GPT reads up to ``max_blocks`` blocks with causal attention
and learned absolute positions. Heads (Linear-ReLU-Linear on the final features):

* observations: at every position whose *next* token is an observation token (all but the last
  observation token of a block), logits over the ``V`` codes;
* reward sign (3 classes, ``sign(r) + 1``) and episode end (2 classes): at the action token.

Parameters are laid out as the reference's (separate query/key/value projections, LayerNorm
before attention and MLP, 4x MLP with GELU), with our own names; ``weights.py`` maps between them.

Axis legend: ``B`` batch, ``L`` new tokens, ``S`` cached + new tokens, ``D`` width, ``V``
vocabulary, ``A`` actions, ``K`` tokens per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.errors import ShapeError
from worldflux.nn.transformer import KVCache


def _mlp_head(dim: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, out))


class SelfAttention(nn.Module):
    """Causal multi-head self-attention with separate query, key and value projections."""

    def __init__(self, dim: int, heads: int, attn_pdrop: float, resid_pdrop: float) -> None:
        super().__init__()
        self.heads, self.attn_pdrop = heads, attn_pdrop
        self.key, self.query, self.value = (nn.Linear(dim, dim) for _ in range(3))
        self.proj = nn.Linear(dim, dim)
        self.resid_drop = nn.Dropout(resid_pdrop)

    def forward(self, x: Tensor, mask: Tensor, cache: KVCache | None, layer: int) -> Tensor:
        """``x (B, L, D)``, boolean ``mask (L, S)`` (True: may attend) -> ``(B, L, D)``."""
        b, n, d = x.shape

        def split(t: Tensor) -> Tensor:
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        if cache is not None:
            k, v = cache.store(layer, k, v)
        drop = self.attn_pdrop if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, n, d)))


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-5, as ``nn.LayerNorm``'s default)."""

    def __init__(self, dim: int, heads: int, attn_pdrop: float, resid_pdrop: float) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, attn_pdrop, resid_pdrop)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(resid_pdrop)
        )

    def forward(self, x: Tensor, mask: Tensor, cache: KVCache | None, layer: int) -> Tensor:
        """``(B, L, D)`` -> ``(B, L, D)``."""
        x = x + self.attn(self.ln1(x), mask, cache, layer)
        return x + self.mlp(self.ln2(x))


@dataclass
class WorldModelOutput:
    """Final features ``(B, L, D)`` and the heads' logits at the positions they read.

    ``obs`` is ``(B, L_obs, V)``, ``reward`` ``(B, L_act, 3)``, ``end`` ``(B, L_act, 2)``, where
    ``L_obs`` and ``L_act`` count the new positions each head reads, in order.
    """

    features: Tensor
    obs: Tensor
    reward: Tensor
    end: Tensor


class TokenWorldModelNet(nn.Module):
    """The GPT of IRIS with its token embeddings and heads.

    Args:
        vocab_size: observation vocabulary ``V``.
        action_dim: number of actions ``A`` (the action vocabulary).
        tokens_per_block: ``K + 1``.
        max_blocks: context in steps; ``max_tokens = tokens_per_block * max_blocks``.
        num_layers, num_heads, embed_dim: depth, heads and width ``D``.
        embed_pdrop, resid_pdrop, attn_pdrop: dropouts.
    """

    def __init__(
        self,
        vocab_size: int,
        action_dim: int,
        tokens_per_block: int,
        max_blocks: int,
        num_layers: int,
        num_heads: int,
        embed_dim: int,
        embed_pdrop: float,
        resid_pdrop: float,
        attn_pdrop: float,
    ) -> None:
        super().__init__()
        self.vocab_size, self.action_dim = vocab_size, action_dim
        self.tokens_per_block, self.max_tokens = tokens_per_block, tokens_per_block * max_blocks
        self.num_heads, self.embed_dim = num_heads, embed_dim
        self.pos_emb = nn.Embedding(self.max_tokens, embed_dim)
        self.embed_act = nn.Embedding(action_dim, embed_dim)
        self.embed_obs = nn.Embedding(vocab_size, embed_dim)
        self.drop = nn.Dropout(embed_pdrop)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, attn_pdrop, resid_pdrop) for _ in range(num_layers)
        )
        self.ln_f = nn.LayerNorm(embed_dim)
        self.head_obs = _mlp_head(embed_dim, vocab_size)
        self.head_reward = _mlp_head(embed_dim, 3)
        self.head_end = _mlp_head(embed_dim, 2)
        self.apply(_init_weights)

    def new_cache(self, batch: int) -> KVCache:
        """An empty key-value cache for ``batch`` sequences of up to ``max_tokens`` tokens."""
        w = self.pos_emb.weight
        head = self.embed_dim // self.num_heads
        return KVCache(
            len(self.blocks), batch, self.num_heads, head, self.max_tokens, w.device, w.dtype
        )

    def forward(self, tokens: Tensor, cache: KVCache | None = None) -> WorldModelOutput:
        """Run ``tokens (B, L)`` (continuing ``cache`` when given; positions follow on)."""
        b, n = tokens.shape
        start = 0 if cache is None else cache.length
        if start + n > self.max_tokens:
            raise ShapeError(
                f"the world model's context holds {self.max_tokens} tokens "
                f"({self.max_tokens // self.tokens_per_block} steps); got {start + n}"
            )
        pos = torch.arange(start, start + n, device=tokens.device)
        is_act = pos % self.tokens_per_block == self.tokens_per_block - 1
        self._check_ids(tokens, is_act)
        # both tables are looked up on clamped ids, then the right one is kept per position
        x = torch.where(
            is_act[None, :, None],
            self.embed_act(tokens.clamp(max=self.action_dim - 1)),
            self.embed_obs(tokens),
        )
        x = self.drop(x + self.pos_emb(pos))
        keys = torch.arange(start + n, device=tokens.device)
        mask = keys[None, :] <= pos[:, None]
        for i, block in enumerate(self.blocks):
            x = block(x, mask, cache, i)
        if cache is not None:
            cache.advance(n)
        x = self.ln_f(x)
        reads_obs = pos % self.tokens_per_block != self.tokens_per_block - 2
        return WorldModelOutput(
            x,
            self.head_obs(x[:, reads_obs]),
            self.head_reward(x[:, is_act]),
            self.head_end(x[:, is_act]),
        )

    def _check_ids(self, tokens: Tensor, is_act: Tensor) -> None:
        if tokens.dtype not in (torch.int64, torch.int32):
            raise ShapeError(f"tokens must be integer ids, got dtype {tokens.dtype}")
        if tokens.numel() == 0:
            return
        obs, act = tokens[:, ~is_act], tokens[:, is_act]
        if obs.numel() and (obs.min() < 0 or obs.max() >= self.vocab_size):
            raise ShapeError(
                f"observation token ids must be in [0, {self.vocab_size - 1}], got "
                f"[{int(obs.min())}, {int(obs.max())}]"
            )
        if act.numel() and (act.min() < 0 or act.max() >= self.action_dim):
            raise ShapeError(
                f"action token ids must be in [0, {self.action_dim - 1}], got "
                f"[{int(act.min())}, {int(act.max())}]"
            )


def _init_weights(module: nn.Module) -> None:
    """GPT initialisation (minGPT, as the reference): N(0, 0.02) weights, zero biases."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
