"""R2I's encoder, decoder and heads: the DreamerV3 (2023) networks of the reference.

Facts from chandar-lab/Recall2Imagine @ 6e317e7, ``recall2imagine/nets.py`` (the arXiv-2023
DreamerV3 code it extends): dense layers are ``x @ W`` then LayerNorm (``eps 1e-3``, scale and
shift, no bias before it) then SiLU; weights are truncated normals of variance
``outscale / mean(fan_in, fan_out)`` (``winit: normal, fan: avg``) except output layers and the
latent-statistics layers, which use the uniform variant. Images enter as ``pixels - 0.5``
through stride-2 4x4 convolutions doubling ``depth`` down to ``minres`` (``cnn_blocks: 0``, so
no residual blocks); the decoder mirrors them from a linear map of ``[deter, stoch]`` and adds
0.5. Vectors are symlog'ed, then an MLP. Reward and critic predict 255 symlog bins in
``[-20, 20]`` with two-hot targets; continue is Bernoulli; the actor is a categorical with 1%
uniform mix (discrete) or a tanh-mean normal (continuous).

Axis legend: ``N`` flattened batch, ``C`` channels, ``K`` bins, ``A`` actions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.errors import ComponentError, ShapeError
from worldflux.nn.distributions import BoundedNormal, Categorical
from worldflux.nn.encoders import as_observation_dict, image_unit_float
from worldflux.nn.functional import symexp, symlog, twohot

_TRUNC_STD = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]


def init_(weight: Tensor, fan_in: int, fan_out: int, dist: str, outscale: float = 1.0) -> None:
    """In place: the reference's ``Initializer(dist, outscale, fan='avg')``."""
    if weight.is_meta:
        return
    with torch.no_grad():
        if outscale == 0.0:
            weight.zero_()
            return
        scale = outscale / ((fan_in + fan_out) / 2)
        if dist == "uniform":
            limit = math.sqrt(3 * scale)
            weight.uniform_(-limit, limit)
        else:
            nn.init.trunc_normal_(weight, 0.0, 1.0, -2.0, 2.0)
            weight.mul_(math.sqrt(scale) / _TRUNC_STD)


class Dense(nn.Module):
    """``Linear(units, act, norm, bias, outscale, winit)`` of the reference."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        norm: bool = True,
        act: bool = True,
        winit: str = "normal",
        outscale: float = 1.0,
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim, bias=not norm)
        self.norm = nn.LayerNorm(out_dim, eps=1e-3) if norm else None
        self.act = act
        init_(self.linear.weight, in_dim, out_dim, winit, outscale)
        if self.linear.bias is not None and not self.linear.bias.is_meta:
            nn.init.zeros_(self.linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.linear(x)
        if self.norm is not None:
            x = self.norm(x)
        return F.silu(x) if self.act else x


def mlp(in_dim: int, layers: int, units: int) -> nn.Sequential:
    """``layers`` LayerNorm-SiLU dense layers of ``units``."""
    return nn.Sequential(*[Dense(in_dim if i == 0 else units, units) for i in range(layers)])


def _conv_init(conv: nn.Module, dist: str) -> None:
    w = conv.weight  # (out, in, k, k): fans count the kernel area as the reference's HWIO does
    space = w.shape[-1] * w.shape[-2]
    init_(w, w.shape[1] * space, w.shape[0] * space, dist)
    if conv.bias is not None and not conv.bias.is_meta:
        nn.init.zeros_(conv.bias)


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of ``(N, C, H, W)`` maps."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class MultiEncoder(nn.Module):
    """CNN for image modalities (channels stacked), symlog MLP for vector ones (``MultiEncoder``).

    Args:
        modalities: ``{name: {"kind", "shape"}}``.
        depth: channels of the first convolution.
        mlp_units, mlp_layers: the vector MLP.
        minres: spatial size where the convolutions stop.
        symlog: symlog the vector inputs.
    """

    def __init__(
        self,
        modalities: Mapping[str, Mapping[str, Any]],
        depth: int,
        mlp_units: int,
        mlp_layers: int,
        minres: int = 4,
        symlog: bool = True,
    ) -> None:
        super().__init__()
        self.images = [k for k, v in modalities.items() if v["kind"] == "image"]
        self.vectors = [k for k, v in modalities.items() if v["kind"] == "vector"]
        self.symlog = symlog
        self.out_dim = 0
        self.cnn = None
        if self.images:
            shapes = [modalities[k]["shape"] for k in self.images]
            size = shapes[0][-1]
            if any(s[1:] != shapes[0][1:] for s in shapes) or size != shapes[0][-2]:
                raise ShapeError(f"images must be square and share (H, W), got {shapes}")
            stages = int(math.log2(size) - math.log2(minres))
            if stages < 1 or minres * 2**stages != size:
                raise ShapeError(
                    f"image size {size} must be minres ({minres}) times a power of two"
                )
            layers, ch = [], sum(s[0] for s in shapes)
            for i in range(stages):
                conv = nn.Conv2d(ch, depth * 2**i, 4, 2, 1, bias=False)
                _conv_init(conv, "normal")
                layers += [conv, ChannelNorm(depth * 2**i, eps=1e-3), nn.SiLU()]
                ch = depth * 2**i
            self.cnn = nn.Sequential(*layers)
            self.out_dim += ch * minres * minres
        self.mlp = None
        if self.vectors:
            width = sum(math.prod(modalities[k]["shape"]) for k in self.vectors)
            self.mlp = mlp(width, mlp_layers, mlp_units)
            self.out_dim += mlp_units if mlp_layers else width

    def forward(self, obs: Tensor | Mapping[str, Tensor]) -> Tensor:
        """``(N, *shape)`` observations (or a mapping) to ``(N, out_dim)``."""
        items = as_observation_dict(obs, self.images + self.vectors)
        outs = []
        if self.cnn is not None:
            x = torch.cat([image_unit_float(items[k]) for k in self.images], 1) - 0.5
            outs.append(self.cnn(x).flatten(1))
        if self.mlp is not None:
            x = torch.cat([items[k].float().flatten(1) for k in self.vectors], -1)
            outs.append(self.mlp(symlog(x) if self.symlog else x))
        return torch.cat(outs, -1)


class MultiDecoder(nn.Module):
    """Transposed CNN for images (MSE, summed) and an MLP for vectors (symlog MSE, summed).

    Args:
        modalities: ``{name: {"kind", "shape"}}``.
        in_dim: size of ``[deter, stoch]``.
        depth, mlp_units, mlp_layers, minres: as in :class:`MultiEncoder`.
    """

    def __init__(
        self,
        modalities: Mapping[str, Mapping[str, Any]],
        in_dim: int,
        depth: int,
        mlp_units: int,
        mlp_layers: int,
        minres: int = 4,
    ) -> None:
        super().__init__()
        self.images = [k for k, v in modalities.items() if v["kind"] == "image"]
        self.vectors = [k for k, v in modalities.items() if v["kind"] == "vector"]
        self.shapes = {k: list(v["shape"]) for k, v in modalities.items()}
        self.minres, self.cnn, self.mlp = minres, None, None
        if self.images:
            size = self.shapes[self.images[0]][-1]
            stages = int(math.log2(size) - math.log2(minres))
            ch = depth * 2 ** (stages - 1)
            self.top = ch
            self.linear_in = nn.Linear(in_dim, minres * minres * ch)
            init_(self.linear_in.weight, in_dim, minres * minres * ch, "uniform")
            if not self.linear_in.bias.is_meta:
                nn.init.zeros_(self.linear_in.bias)
            layers: list[nn.Module] = []
            for i in range(stages):
                last = i == stages - 1
                out = sum(self.shapes[k][0] for k in self.images) if last else ch // 2
                conv = nn.ConvTranspose2d(ch, out, 4, 2, 1, bias=last)
                # the reference's transposed kernel is (k, k, out, in): fan_in counts out
                w = conv.weight
                init_(w, out * 16, ch * 16, "uniform" if last else "normal")
                if last and not conv.bias.is_meta:
                    nn.init.zeros_(conv.bias)
                layers.append(conv)
                if not last:
                    layers += [ChannelNorm(out, eps=1e-3), nn.SiLU()]
                ch = out
            self.cnn = nn.Sequential(*layers)
        if self.vectors:
            self.mlp = mlp(in_dim, mlp_layers, mlp_units)
            width = mlp_units if mlp_layers else in_dim
            self.heads = nn.ModuleDict(
                {
                    k: Dense(width, math.prod(self.shapes[k]), False, False, "uniform")
                    for k in self.vectors
                }
            )

    def forward(self, feat: Tensor) -> dict[str, Tensor]:
        """Predictions ``{name: (N, *shape)}`` (images as means, vectors in symlog space)."""
        out = {}
        if self.cnn is not None:
            x = self.linear_in(feat).view(-1, self.top, self.minres, self.minres)
            x = self.cnn(x) + 0.5
            start = 0
            for k in self.images:
                c = self.shapes[k][0]
                out[k] = x[:, start : start + c]
                start += c
        if self.mlp is not None:
            x = self.mlp(feat)
            for k in self.vectors:
                out[k] = self.heads[k](x).view(-1, *self.shapes[k])
        return out

    def losses(self, feat: Tensor, obs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Negative log-likelihoods ``{name: (N,)}`` of the observations."""
        preds = self(feat)
        out = {}
        for k, pred in preds.items():
            if k in self.images:
                target = image_unit_float(obs[k])
                out[k] = (pred - target).pow(2).flatten(1).sum(-1)
            else:
                dist = (pred - symlog(obs[k].float())).pow(2)
                out[k] = torch.where(dist < 1e-8, 0.0, dist).flatten(1).sum(-1)
        return out

    def obs_prediction(self, name: str, pred: Tensor) -> Tensor:
        """A prediction in observation space (images clipped to ``[0, 1]``, vectors symexp'd)."""
        return pred.clamp(0.0, 1.0) if name in self.images else symexp(pred)


class TwoHotHead(nn.Module):
    """MLP to ``bins`` logits over symlog values in ``[-20, 20]`` (``dist: symlog_disc``)."""

    bins: Tensor

    def __init__(
        self, in_dim: int, units: int, layers: int, bins: int = 255, outscale: float = 0.0
    ) -> None:
        super().__init__()
        self.net = mlp(in_dim, layers, units)
        self.out = Dense(units if layers else in_dim, bins, False, False, "uniform", outscale)
        self.register_buffer("bins", torch.linspace(-20.0, 20.0, bins), persistent=False)

    def forward(self, feat: Tensor) -> Tensor:
        return self.out(self.net(feat))

    def mean(self, logits: Tensor) -> Tensor:
        """``symexp`` of the expected bin ``(...)``."""
        return symexp((torch.softmax(logits, -1) * self.bins).sum(-1))

    def nll(self, logits: Tensor, target: Tensor) -> Tensor:
        """Two-hot cross-entropy ``(...)`` of ``symlog(target)``."""
        return -(twohot(symlog(target), self.bins) * torch.log_softmax(logits, -1)).sum(-1)


class BinaryHead(nn.Module):
    """MLP to one Bernoulli logit (``dist: binary``)."""

    def __init__(self, in_dim: int, units: int, layers: int, outscale: float = 1.0) -> None:
        super().__init__()
        self.net = mlp(in_dim, layers, units)
        self.out = Dense(units if layers else in_dim, 1, False, False, "uniform", outscale)

    def forward(self, feat: Tensor) -> Tensor:
        return self.out(self.net(feat))[..., 0]

    def nll(self, logit: Tensor, target: Tensor) -> Tensor:
        """``-log p(target)`` ``(...)``."""
        return F.binary_cross_entropy_with_logits(logit, target, reduction="none")


class PolicyHead(nn.Module):
    """MLP to a categorical with uniform mix (discrete) or a tanh-mean normal (continuous)."""

    def __init__(
        self,
        in_dim: int,
        units: int,
        layers: int,
        action_dim: int,
        action_kind: str,
        minstd: float = 0.1,
        maxstd: float = 1.0,
        unimix: float = 0.01,
        outscale: float = 1.0,
    ) -> None:
        super().__init__()
        if action_kind not in ("discrete", "continuous"):
            raise ComponentError(f"action_kind must be discrete or continuous, got {action_kind!r}")
        self.kind, self.minstd, self.maxstd, self.unimix = action_kind, minstd, maxstd, unimix
        self.net = mlp(in_dim, layers, units)
        width = units if layers else in_dim
        self.out = Dense(width, action_dim, False, False, "uniform", outscale)
        self.std = (
            Dense(width, action_dim, False, False, "uniform", outscale)
            if action_kind == "continuous"
            else None
        )

    def forward(self, feat: Tensor) -> Categorical | BoundedNormal:
        x = self.net(feat)
        if self.std is None:
            return Categorical(self.out(x), self.unimix)
        std = (self.maxstd - self.minstd) * torch.sigmoid(self.std(x) + 2.0) + self.minstd
        return BoundedNormal(torch.tanh(self.out(x)), std, self.minstd, self.maxstd)
