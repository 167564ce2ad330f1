"""Weights in the layout of the reference code (greydanus/hamiltonian-nn @ bcc3622).

hamiltonian-nn saves ``torch.save(model.state_dict(), path)`` of its ``HNN`` (keys
``differentiable_model.linear{1,2,3}.*``) or ``PixelHNN`` (``autoencoder.linear{1..8}.*`` and
``hnn.differentiable_model.linear{1,2,3}.*``); it releases no trained files, but runs of its
scripts write them. :func:`load_reference_state_dict` maps either layout onto a physics model.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from worldflux.errors import ModelFileError

_PREFIXES = (
    ("hnn.differentiable_model.", "field_net."),
    ("differentiable_model.", "field_net."),
    ("autoencoder.", "autoencoder."),
)


def reference_to_ours(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename the reference's keys to ours (unknown keys are kept, so they are reported)."""
    out = {}
    for key, value in state.items():
        for old, new in _PREFIXES:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out


def load_reference_state_dict(model: Any, source: str | Path | Mapping[str, Tensor]) -> None:
    """Copy a hamiltonian-nn state dict (a mapping, or a file ``torch.save`` wrote) into ``model``.

    Raises:
        ModelFileError: naming the missing, unexpected and shape-mismatched keys.
    """
    where = "<state dict>"
    if not isinstance(source, Mapping):
        where = str(source)
        try:
            source = torch.load(source, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, pickle.UnpicklingError) as err:
            raise ModelFileError(where, f"cannot be read as a torch state dict ({err})") from err
        if not isinstance(source, Mapping):
            raise ModelFileError(where, f"holds a {type(source).__name__}, not a state dict")
    ours = model.state_dict()
    state = reference_to_ours(source)
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(ours[k].shape)}"
        for k in sorted(set(ours) & set(state))
        if tuple(state[k].shape) != tuple(ours[k].shape)
    ]
    if missing or unexpected or shapes:
        raise ModelFileError(
            where,
            f"does not fit {type(model).__name__} ({model.config.kind}): missing keys {missing}, "
            f"unexpected keys {unexpected}, shape mismatches {shapes}",
        )
    model.load_state_dict(state)
