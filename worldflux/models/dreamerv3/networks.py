"""DreamerV3's observation encoder and decoder, one branch per modality kind.

Facts from danijar/dreamerv3 ``dreamerv3/rssm.py`` @ e3f0224 (classes ``Encoder``, ``Decoder``):
vector keys (sorted) are symlog-squashed, concatenated and embedded by ``layers`` dense layers of
``units``; image keys (sorted) are stacked along channels, scaled to ``[-0.5, 0.5]`` and passed
through ``len(mults)`` blocks of (``kernel`` x ``kernel`` conv with ``depth * mult`` channels,
2x2 max-pool, norm, activation). The decoder mirrors them: vectors by an MLP and one linear
head per key predicting the symlog of the vector; images from a spatial seed (a block-diagonal
map of ``deter`` in ``bspace`` blocks plus a two-layer map of ``stoch``), then nearest 2x
upsampling and convolutions back to full resolution, and a sigmoid.

Axis legend: ``N`` flattened batch, ``C, H, W`` channels, height, width, ``D`` vector size,
``G`` decoder blocks (``bspace``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.errors import ComponentError, ConfigError
from worldflux.nn.conv import ChannelNormAct, UpConv2d, conv_stack, upconv_stack
from worldflux.nn.encoders import (
    LatentProjection,
    as_observation_dict,
    check_host_sizes,
    observation_modalities,
)
from worldflux.nn.functional import symlog
from worldflux.nn.fused import sigmoid_squared_error
from worldflux.nn.layers import MLP, BlockLinear, Dense, Linear


def split_modalities(modalities: Mapping[str, Mapping[str, Any]]) -> tuple[list, list]:
    """Sorted names of the vector and of the image modalities."""
    vec = sorted(k for k, s in modalities.items() if s["kind"] == "vector")
    img = sorted(k for k, s in modalities.items() if s["kind"] == "image")
    return vec, img


def image_geometry(modalities: Mapping[str, Any], img: list[str], stages: int) -> tuple:
    """``(channels, H, W, H_min, W_min)`` of the stacked images after ``stages`` halvings."""
    shapes = [tuple(modalities[k]["shape"]) for k in img]
    if len({s[1:] for s in shapes}) > 1:
        raise ConfigError(
            f"image modalities must share one resolution, got {dict(zip(img, shapes))}"
        )
    _, h, w = shapes[0]
    factor = 2**stages
    if h % factor or w % factor:
        raise ConfigError(f"image resolution {h}x{w} must be divisible by 2**len(mults) = {factor}")
    return sum(s[0] for s in shapes), h, w, h // factor, w // factor


class SimpleEncoder(nn.Module):
    """The official ``simple`` encoder; ``forward`` maps ``{name: (N, *shape)}`` to ``(N, E)``.

    It follows the encoder contract of :mod:`worldflux.nn.encoders`, so other families can use
    it: given ``latent_dim`` (TD-MPC2 does) it ends in a :class:`LatentProjection` to that width;
    ``depth`` and ``units`` default to the ``size12m`` widths when the host does not pass them.

    ``strided`` replaces each convolution + 2x2 max-pool by a stride-2 convolution (the
    official ``enc.simple.strided`` option; same parameters, a quarter of the multiply-adds).
    """

    def __init__(
        self,
        modalities: Mapping[str, Any] | None = None,
        depth: int = 16,
        units: int = 256,
        mults: Sequence[int] = (2, 3, 4, 4),
        layers: int = 3,
        kernel: int = 5,
        symlog: bool = True,
        act: str = "silu",
        norm: str = "rms",
        strided: bool = False,
        *,
        obs_shape: Sequence[int] | None = None,
        latent_dim: int | None = None,
        latent_norm: str = "simnorm",
        simnorm_dim: int = 8,
        task_dim: int = 0,
        **host_sizes: Any,
    ) -> None:
        super().__init__()
        check_host_sizes("SimpleEncoder", host_sizes)
        modalities = observation_modalities(modalities, obs_shape)
        self.vec_keys, self.img_keys = split_modalities(modalities)
        if task_dim and self.img_keys:
            raise ComponentError(
                "SimpleEncoder takes a task embedding (task_dim) with vectors only"
            )
        self.symlog = symlog
        self.out_dim = 0
        if self.vec_keys:
            in_dim = sum(int(modalities[k]["shape"][0]) for k in self.vec_keys) + task_dim
            self.mlp = MLP(in_dim, layers, units, norm, act)
            self.out_dim += units
        if self.img_keys:
            chans, _, _, hmin, wmin = image_geometry(modalities, self.img_keys, len(mults))
            # official `strided: True`: stride-2 convs instead of conv + max-pooling
            depths = [depth * m for m in mults]
            self.cnn = conv_stack(chans, depths, kernel, norm, act, strided)
            self.out_dim += depths[-1] * hmin * wmin
        self.latent = None
        if latent_dim is not None:  # a host such as TD-MPC2 needs its own latent width and norm
            self.latent = LatentProjection(self.out_dim, latent_dim, latent_norm, simnorm_dim)
            self.out_dim = latent_dim

    def forward(self, obs: Tensor | Mapping[str, Tensor]) -> Tensor:
        """``{name: (N, *shape)}`` (or one tensor for one modality) -> ``(N, out_dim)``."""
        obs = as_observation_dict(obs, self.vec_keys + self.img_keys)
        outs = []
        if self.vec_keys:
            x = torch.cat([obs[k].float() for k in self.vec_keys], -1)
            outs.append(self.mlp(symlog(x) if self.symlog else x))
        if self.img_keys:
            x = torch.cat([_image_input(obs[k]) for k in self.img_keys], 1)
            x = self.cnn(x.contiguous(memory_format=torch.channels_last))
            # flatten in (H, W, C) order as the official NHWC code does
            outs.append(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1))
        x = torch.cat(outs, -1) if len(outs) > 1 else outs[0]
        return x if self.latent is None else self.latent(x)


def _image_input(x: Tensor) -> Tensor:
    """uint8 ``[0, 255]`` (or float ``[0, 1]``) images to floats in ``[-0.5, 0.5]``."""
    return (x.float() / 255.0 if x.dtype == torch.uint8 else x.float()) - 0.5


class SimpleDecoder(nn.Module):
    """The official ``simple`` decoder.

    ``forward(deter (N, Dd), stoch (N, S*K))`` returns ``{name: prediction}``: images
    ``(N, C, H, W)`` in ``[0, 1]`` and vectors ``(N, D)`` in symlog space (when ``symlog``).
    """

    def __init__(
        self,
        modalities: Mapping[str, Any],
        deter: int,
        stoch: int,
        depth: int,
        units: int,
        mults: list[int],
        layers: int = 3,
        kernel: int = 5,
        bspace: int = 8,
        symlog: bool = True,
        outscale: float = 1.0,
        act: str = "silu",
        norm: str = "rms",
    ) -> None:
        super().__init__()
        self.vec_keys, self.img_keys = split_modalities(modalities)
        self.symlog = symlog
        if self.vec_keys:
            self.mlp = MLP(deter + stoch, layers, units, norm, act)
            self.vec_out = nn.ModuleDict(
                {k: Linear(units, int(modalities[k]["shape"][0]), outscale) for k in self.vec_keys}
            )
        if self.img_keys:
            self._build_images(
                modalities, deter, stoch, depth, units, mults, kernel, bspace, outscale, act, norm
            )

    def _build_images(
        self, modalities, deter, stoch, depth, units, mults, kernel, bspace, outscale, act, norm
    ) -> None:
        chans, _, _, hmin, wmin = image_geometry(modalities, self.img_keys, len(mults))
        self.img_channels = [int(modalities[k]["shape"][0]) for k in self.img_keys]
        depths = [depth * m for m in mults]
        self.seed_shape = (hmin, wmin, depths[-1])
        size = math.prod(self.seed_shape)
        self.bspace = bspace
        if bspace:
            if depths[-1] % bspace:
                raise ConfigError(f"decoder channels {depths[-1]} not divisible by bspace {bspace}")
            self.sp0 = BlockLinear(deter, size, bspace)
            self.sp1 = Dense(stoch, 2 * units, norm, act)
            self.sp2 = Linear(2 * units, size)
        else:
            self.space = Linear(deter + stoch, size)
        self.spnorm = ChannelNormAct(norm, depths[-1], act)
        self.cnn = upconv_stack(depths[-1], depths[-2::-1], kernel, norm, act)
        self.imgout = UpConv2d(depths[0], chans, kernel, outscale)

    def forward(self, deter: Tensor, stoch: Tensor) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        if self.vec_keys:
            x = self.mlp(torch.cat([stoch, deter], -1))
            out.update({k: head(x) for k, head in self.vec_out.items()})
        if self.img_keys:
            out.update(self._images(deter, stoch))
        return out

    def _trunk(self, deter: Tensor, stoch: Tensor) -> Tensor:
        """Feature maps before the output layer ``(N, C, H / 2, W / 2)`` (channels-last)."""
        n = deter.shape[0]
        h, w, c = self.seed_shape
        if self.bspace:
            g = self.bspace
            x0 = self.sp0(deter).view(n, g, h, w, c // g).permute(0, 2, 3, 1, 4)
            x1 = self.sp2(self.sp1(stoch)).view(n, h, w, c)
            x = x0.reshape(n, h, w, c) + x1
        else:
            x = self.space(torch.cat([stoch, deter], -1)).view(n, h, w, c)
        x = self.spnorm(x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last))
        return self.cnn(x)

    def _images(self, deter: Tensor, stoch: Tensor) -> dict[str, Tensor]:
        x = torch.sigmoid(self.imgout(self._trunk(deter, stoch)))
        return dict(zip(self.img_keys, torch.split(x, self.img_channels, 1)))

    def losses(self, deter: Tensor, stoch: Tensor, obs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per-sample reconstruction losses ``{name: (N,)}`` against observations ``(N, ...)``.

        Images: squared error of the sigmoid output against pixels in ``[0, 1]``, summed over
        pixels; vectors: squared error against the (symlog) target, summed. The image error is
        summed in the output layer's pre-shuffle (phase) layout, which holds the same pixels.
        """
        out = {}
        if self.vec_keys:
            x = self.mlp(torch.cat([stoch, deter], -1))
            for k, head in self.vec_out.items():
                out[k] = (head(x) - self.obs_target(k, obs[k])).square().sum(-1)
        if self.img_keys:
            z = self.imgout.phases(self._trunk(deter, stoch))
            for k, zk in zip(self.img_keys, torch.split(z, [4 * c for c in self.img_channels], 1)):
                target = F.pixel_unshuffle(obs[k], 2)
                target = self.obs_target(k, target).contiguous(memory_format=torch.channels_last)
                out[k] = sigmoid_squared_error(zk, target)
        return out

    def obs_target(self, name: str, value: Tensor) -> Tensor:
        """The regression target of modality ``name``: images in ``[0, 1]``, symlog vectors."""
        if name in self.img_keys:
            return value.float() / 255.0 if value.dtype == torch.uint8 else value.float()
        return symlog(value.float()) if self.symlog else value.float()

    def obs_prediction(self, name: str, pred: Tensor) -> Tensor:
        """A decoder output mapped back to observation space (symexp for symlog vectors)."""
        if name in self.vec_keys and self.symlog:
            return torch.sign(pred) * torch.expm1(pred.abs())
        return pred
