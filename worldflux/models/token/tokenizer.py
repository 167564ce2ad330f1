"""IRIS's discrete autoencoder: a VQ-VAE that turns a frame into a grid of codebook tokens.

Reference: eloialonso/iris @ 24326aa, ``src/models/tokenizer/`` (its encoder/decoder follow
taming-transformers). The layout of parameters (names and shapes) matches the reference, so its
checkpoints load with a prefix change only.

Encoder: 3x3 conv to ``ch``; per level ``num_res_blocks`` residual blocks (with self-attention
where the resolution is in ``attn_resolutions``) and a stride-2 conv between levels; a middle
block (res, attention, res); GroupNorm, swish and a 3x3 conv to ``z_channels``. The decoder
mirrors it with ``num_res_blocks + 1`` blocks per level and nearest upsampling. Between them,
1x1 convs to and from the codebook width and nearest-neighbour quantisation.

Axis legend: ``N`` frames, ``C`` channels, ``H, W`` spatial, ``K`` tokens per frame, ``E``
codebook width, ``V`` vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    # eps 1e-6, as taming-transformers (which always uses 32 groups)
    return nn.GroupNorm(groups, channels, eps=1e-6)


def _conv3(cin: int, cout: int, stride: int = 1, padding: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding)


class ResBlock(nn.Module):
    """GroupNorm-swish-conv twice, with a 1x1 shortcut when the width changes."""

    def __init__(self, cin: int, cout: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin, groups), _conv3(cin, cout)
        self.norm2, self.dropout = _norm(cout, groups), nn.Dropout(dropout)
        self.conv2 = _conv3(cout, cout)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: Tensor) -> Tensor:
        """``(N, Cin, H, W)`` -> ``(N, Cout, H, W)``."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with 1x1 projections and a residual."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = _norm(channels, groups)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(channels, channels, 1) for _ in range(4))

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` -> ``(N, C, H, W)``."""
        n, c, h, w = x.shape
        y = self.norm(x)
        q, k, v = (m(y).flatten(2) for m in (self.q, self.k, self.v))  # (N, C, HW)
        att = torch.softmax(q.transpose(1, 2) @ k * c**-0.5, dim=-1)  # (N, HW_q, HW_k)
        out = (v @ att.transpose(1, 2)).view(n, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Stride-2 3x3 conv after padding right and bottom by one (the reference's asymmetric pad)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = _conv3(channels, channels, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` -> ``(N, C, H/2, W/2)``."""
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour doubling followed by a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = _conv3(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` -> ``(N, C, 2H, 2W)``."""
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Level(nn.Module):
    """One resolution level: residual blocks, their attention blocks and a resampler."""

    def __init__(
        self, blocks: list[nn.Module], attn: list[nn.Module], resample: str | None
    ) -> None:
        super().__init__()
        self.block, self.attn = nn.ModuleList(blocks), nn.ModuleList(attn)
        channels = blocks[-1].conv2.out_channels
        if resample == "down":
            self.downsample = Downsample(channels)
        elif resample == "up":
            self.upsample = Upsample(channels)

    def forward(self, x: Tensor) -> Tensor:
        """Every block (and its attention), then the resampler if any."""
        for i, block in enumerate(self.block):
            x = block(x)
            if len(self.attn):
                x = self.attn[i](x)
        for name in ("downsample", "upsample"):
            if hasattr(self, name):
                x = getattr(self, name)(x)
        return x


class _Middle(nn.Module):
    def __init__(self, channels: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.block_1 = ResBlock(channels, channels, dropout, groups)
        self.attn_1 = AttnBlock(channels, groups)
        self.block_2 = ResBlock(channels, channels, dropout, groups)

    def forward(self, x: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    """Frames ``(N, 3, H, W)`` in ``[-1, 1]`` -> features ``(N, z_channels, h, w)``."""

    def __init__(
        self,
        resolution: int,
        ch: int,
        ch_mult: list[int],
        num_res_blocks: int,
        attn_resolutions: list[int],
        z_channels: int,
        dropout: float,
        norm_groups: int = 32,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.conv_in = _conv3(in_channels, ch)
        levels, res, cin = [], resolution, ch
        for i, mult in enumerate(ch_mult):
            cout = ch * mult
            blocks = [
                ResBlock(cin if j == 0 else cout, cout, dropout, norm_groups)
                for j in range(num_res_blocks)
            ]
            attn = [AttnBlock(cout, norm_groups) for _ in blocks] if res in attn_resolutions else []
            last = i == len(ch_mult) - 1
            levels.append(_Level(blocks, attn, None if last else "down"))
            res, cin = (res if last else res // 2), cout
        self.down = nn.ModuleList(levels)
        self.mid = _Middle(cin, dropout, norm_groups)
        self.norm_out = _norm(cin, norm_groups)
        self.conv_out = _conv3(cin, z_channels)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W)`` -> ``(N, z_channels, H / 2^(L-1), W / 2^(L-1))``."""
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    """Features ``(N, z_channels, h, w)`` -> frames ``(N, 3, H, W)`` (unbounded, ~[-1, 1])."""

    def __init__(
        self,
        resolution: int,
        ch: int,
        ch_mult: list[int],
        num_res_blocks: int,
        attn_resolutions: list[int],
        z_channels: int,
        dropout: float,
        norm_groups: int = 32,
        out_ch: int = 3,
    ) -> None:
        super().__init__()
        cin = ch * ch_mult[-1]
        res = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = _conv3(z_channels, cin)
        self.mid = _Middle(cin, dropout, norm_groups)
        levels: list[nn.Module] = []
        for i in reversed(range(len(ch_mult))):
            cout = ch * ch_mult[i]
            blocks = [
                ResBlock(cin if j == 0 else cout, cout, dropout, norm_groups)
                for j in range(num_res_blocks + 1)
            ]
            attn = [AttnBlock(cout, norm_groups) for _ in blocks] if res in attn_resolutions else []
            levels.insert(0, _Level(blocks, attn, "up" if i else None))
            res, cin = (res * 2 if i else res), cout
        self.up = nn.ModuleList(levels)  # indexed by level, run from the deepest
        self.norm_out = _norm(cin, norm_groups)
        self.conv_out = _conv3(cin, out_ch)

    def forward(self, z: Tensor) -> Tensor:
        """``(N, z_channels, h, w)`` -> ``(N, 3, H, W)``."""
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


@dataclass
class Quantized:
    """Encoder output: ``z`` and ``z_q`` ``(..., E, h, w)`` and the token ids ``(..., K)``."""

    z: Tensor
    z_q: Tensor
    tokens: Tensor


class Tokenizer(nn.Module):
    """The VQ autoencoder (encoder, 1x1 convs, codebook, decoder) of IRIS.

    Args:
        resolution: frame side ``H``.
        vocab_size, embed_dim: codebook size and width.
        ch, ch_mult, num_res_blocks, attn_resolutions, z_channels, dropout: encoder/decoder.
        norm_groups: GroupNorm groups (32 in the reference; every width must be a multiple).
    """

    def __init__(
        self,
        resolution: int,
        vocab_size: int,
        embed_dim: int,
        ch: int,
        ch_mult: list[int],
        num_res_blocks: int,
        attn_resolutions: list[int],
        z_channels: int,
        dropout: float,
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        knobs = dict(
            resolution=resolution,
            ch=ch,
            ch_mult=list(ch_mult),
            num_res_blocks=num_res_blocks,
            attn_resolutions=list(attn_resolutions),
            z_channels=z_channels,
            dropout=dropout,
            norm_groups=norm_groups,
        )
        self.vocab_size = vocab_size
        self.down = 2 ** (len(ch_mult) - 1)  # frame pixels per token side
        self.encoder = Encoder(**knobs)
        self.pre_quant_conv = nn.Conv2d(z_channels, embed_dim, 1)
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.post_quant_conv = nn.Conv2d(embed_dim, z_channels, 1)
        self.decoder = Decoder(**knobs)
        # a small uniform codebook (as the reference) so that early codes are all near zero
        nn.init.uniform_(self.embedding.weight, -1.0 / vocab_size, 1.0 / vocab_size)

    def encode(self, x: Tensor) -> Quantized:
        """Quantise frames ``(..., 3, H, W)`` in ``[-1, 1]`` to their nearest codes."""
        lead = x.shape[:-3]
        z = self.pre_quant_conv(self.features(x.reshape(-1, *x.shape[-3:])))
        n, e, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, e)
        codes = self.embedding.weight
        dist = flat.pow(2).sum(1, keepdim=True) + codes.pow(2).sum(1) - 2 * flat @ codes.t()
        tokens = dist.argmin(-1)
        z_q = self.embedding(tokens).view(n, h, w, e).permute(0, 3, 1, 2).contiguous()
        return Quantized(
            z.reshape(*lead, e, h, w), z_q.reshape(*lead, e, h, w), tokens.reshape(*lead, h * w)
        )

    def features(self, x: Tensor) -> Tensor:
        """The encoder's output ``(N, z_channels, h, w)`` of frames ``(N, 3, H, W)``."""
        return self.encoder(x)

    def decode(self, z_q: Tensor) -> Tensor:
        """Frames ``(..., 3, H, W)`` (about ``[-1, 1]``) from codes ``(..., E, h, w)``."""
        lead = z_q.shape[:-3]
        rec = self.decoder(self.post_quant_conv(z_q.reshape(-1, *z_q.shape[-3:])))
        return rec.reshape(*lead, *rec.shape[1:])

    def embed_tokens(self, tokens: Tensor) -> Tensor:
        """Codes ``(..., E, h, w)`` of token ids ``(..., K)`` (``K`` a square)."""
        side = int(round(tokens.shape[-1] ** 0.5))
        emb = self.embedding(tokens)  # (..., K, E)
        return emb.unflatten(-2, (side, side)).movedim(-1, -3)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``z``, ``z_q`` and the reconstruction (straight-through) of frames in ``[-1, 1]``."""
        q = self.encode(x)
        return q.z, q.z_q, self.decode(q.z + (q.z_q - q.z).detach())


class CellTokenizer(Tokenizer):
    """IRIS's tokenizer with every token encoded from its own cell of the frame only.

    Not IRIS: a worldflux option for small grid worlds, chosen by swapping the component
    (``model/token/tokenizer@model.tokenizer=vqvae_cell``); ``token:base`` keeps IRIS's encoder.
    The parameters are IRIS's, name for name; only what the encoder sees changes. Each
    ``down x down`` cell (``down = 2^(len(ch_mult) - 1)``, the pixels of one token) goes through
    the encoder as a frame of its own, so its GroupNorms, attention and 3x3 convolutions never
    mix neighbouring cells. A cell's code then depends on that cell's pixels alone: on Catch
    every black cell gets one code, wherever the ball and paddle are. With IRIS's whole-frame
    encoder black cells spread over 14-25 context-dependent codes (docs/learning.md, token),
    which lets a world model's early tokens of a frame fix where the paddle is before the
    paddle's own tokens are sampled. The decoder still sees the whole token grid.
    """

    def features(self, x: Tensor) -> Tensor:
        """``(N, 3, H, W)`` -> ``(N, z_channels, H / down, W / down)``, one cell at a time."""
        n, c, height, width = x.shape
        d = self.down
        h, w = height // d, width // d
        cells = x.reshape(n, c, h, d, w, d).permute(0, 2, 4, 1, 3, 5).reshape(n * h * w, c, d, d)
        z = self.encoder(cells)  # (N h w, Z, 1, 1)
        return z.reshape(n, h, w, -1).permute(0, 3, 1, 2)
