"""The observation-encoder contract, so that one family's encoder fits another family's slot.

An encoder component is built as ``cls(**file_knobs, **host_arguments)`` (the component file's
arguments, then the host family's call-site arguments, which win) and must:

* take the observation spec as ``modalities`` (``{name: {"kind": "vector" | "image", "shape":
  [...]}}``, DreamerV3's form) or ``obs_shape`` (one unnamed modality, TD-MPC2's form; a 3-D shape
  is an image). :func:`observation_modalities` turns either into the first form;
* take ``latent_dim``: the output width the host requires (TD-MPC2 needs its latent size), or
  ``None`` when the host takes the encoder's natural width (DreamerV3);
* accept the host's width knobs listed in :data:`HOST_SIZES` (DreamerV3 passes ``depth`` and
  ``units``, TD-MPC2 ``enc_dim``, ``num_enc_layers``, ``simnorm_dim`` and ``task_dim``), use those
  it has a parameter for, and reject unknown names (:func:`check_host_sizes`);
* expose ``out_dim`` and map ``forward(obs)`` from a tensor ``(N, *shape)`` (single modality) or a
  mapping ``{name: (N, *shape)}`` to ``(N, out_dim)``. Images arrive as ``uint8`` in
  ``[0, 255]`` or floats in ``[0, 1]``.

When a host asks for ``latent_dim`` and the encoder's natural width differs, the encoder ends in
:class:`LatentProjection` (Linear, LayerNorm, then SimNorm or nothing), the way TD-MPC2 ends its
own encoder, so the latent lives where the host's dynamics expect it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from worldflux.errors import ComponentError, ShapeError
from worldflux.nn.layers import NormedLinear, SimNorm, init_trunc_normal

#: Width knobs that host families pass to every encoder slot; an encoder ignores those it lacks.
HOST_SIZES = frozenset({"depth", "units", "enc_dim", "num_enc_layers", "simnorm_dim", "task_dim"})

#: The modality name of an ``obs_shape`` observation.
SINGLE = "obs"


def observation_modalities(
    modalities: Mapping[str, Mapping[str, Any]] | None = None,
    obs_shape: Sequence[int] | None = None,
) -> dict[str, dict[str, Any]]:
    """The observation spec as ``{name: {"kind", "shape"}}`` from exactly one of the two forms."""
    if (modalities is None) == (obs_shape is None):
        raise ComponentError("an encoder takes exactly one of `modalities` and `obs_shape`")
    if modalities is not None:
        return {
            str(k): {"kind": v["kind"], "shape": list(v["shape"])} for k, v in modalities.items()
        }
    shape = [int(s) for s in obs_shape or ()]
    kind = "image" if len(shape) == 3 else "vector"
    if len(shape) not in (1, 3):
        raise ComponentError(f"obs_shape must be (D,) or (C, H, W), got {tuple(shape)}")
    return {SINGLE: {"kind": kind, "shape": shape}}


def check_host_sizes(owner: str, sizes: Mapping[str, Any]) -> None:
    """Raise :class:`ComponentError` naming any argument that is not a known host width knob."""
    unknown = sorted(set(sizes) - HOST_SIZES)
    if unknown:
        raise ComponentError(
            f"{owner} got unexpected arguments {unknown}; it takes its own knobs and the host "
            f"width knobs {sorted(HOST_SIZES)}"
        )


def as_observation_dict(obs: Tensor | Mapping[str, Tensor], keys: Sequence[str]) -> dict:
    """``{name: tensor}`` for a mapping, or for a tensor when the encoder has one modality."""
    if isinstance(obs, Mapping):
        missing = sorted(set(keys) - set(obs))
        if missing:
            raise ShapeError(f"observations lack modalities {missing}; expected {sorted(keys)}")
        return {k: obs[k] for k in keys}
    if len(keys) != 1:
        raise ShapeError(f"a tensor observation needs a one-modality encoder, this has {keys}")
    return {keys[0]: obs}


def image_unit_float(x: Tensor) -> Tensor:
    """Images as floats in ``[0, 1]`` (``uint8`` divided by 255)."""
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


class LatentProjection(nn.Sequential):
    """Linear -> LayerNorm -> SimNorm (``latent_norm="simnorm"``) or nothing (``"layernorm"``):
    TD-MPC2's last encoder layer, with its trunc-normal(0.02) initialisation."""

    def __init__(
        self, in_dim: int, latent_dim: int, latent_norm: str = "simnorm", simnorm_dim: int = 8
    ) -> None:
        if latent_norm not in ("simnorm", "layernorm"):
            raise ComponentError(
                f"latent_norm must be 'simnorm' or 'layernorm', got {latent_norm!r}"
            )
        act = SimNorm(simnorm_dim) if latent_norm == "simnorm" else nn.Identity()
        super().__init__(NormedLinear(in_dim, latent_dim, act=act))
        self.apply(init_trunc_normal)
        self.out_dim = latent_dim
