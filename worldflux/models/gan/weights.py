"""Reference-layout weights: map nv-tlabs/GameGAN_code state dicts onto :class:`GameGAN`.

The reference saves ``{"netG": ..., "netD": ..., "opts": ...}`` (``utils.save_model``); no trained
weights are published at 1195c39, but a model trained with the reference code loads with
:func:`load_reference` (the ``opts`` entry is a pickled ``optparse.Values``, so pass the two state
dicts, e.g. re-saved with ``torch.save({"netG": ..., "netD": ...})``, to keep ``weights_only``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from worldflux.errors import ModelFileError

#: Reference generator prefixes -> ours (the rest keep their names).
G_PREFIXES = {
    "simple_enc.": "encoder.net.",
    "graphics_renderer.": "renderer.",
    "engine.": "engine.",
    "memory.": "memory.",
}
#: Reference discriminator keys that alias modules registered twice (``trans_conv`` is
#: ``to_transition_feature.0``, ``action_linear1``/``action_linear_out`` are inside
#: ``action_discriminator``).
D_ALIASES = ("trans_conv.", "action_linear1.", "action_linear_out.")


def from_reference(net_g: Mapping[str, Tensor], net_d: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our state dict from the reference's ``netG`` and ``netD`` state dicts."""
    out: dict[str, Tensor] = {}
    for key, value in net_g.items():
        key = key.removeprefix("module.")  # DistributedDataParallel checkpoints
        for old, new in G_PREFIXES.items():
            if key.startswith(old):
                out[new + key[len(old) :]] = value
                break
        else:
            raise ModelFileError(f"unexpected generator key {key!r} in the reference state dict")
    for key, value in net_d.items():
        key = key.removeprefix("module.")
        if not key.startswith(D_ALIASES):
            out["discriminator." + key] = value
    return out


def load_reference(model: Any, source: str | Path | Mapping[str, Any]) -> None:
    """Load reference weights (a file with ``netG``/``netD`` or that mapping) into ``model``.

    Raises:
        ModelFileError: naming the missing, unexpected or mis-shaped keys.
    """
    if not isinstance(source, Mapping):
        try:
            source = torch.load(source, map_location="cpu", weights_only=True)
        except Exception as err:  # unreadable, or pickled objects refused by weights_only
            raise ModelFileError(f"cannot read reference GameGAN weights {source}: {err}") from err
    if not {"netG", "netD"} <= set(source):
        raise ModelFileError(
            f"reference weights need 'netG' and 'netD' entries, got {sorted(source)}"
        )
    state = from_reference(source["netG"], source["netD"])
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in set(own) & set(state) if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        detail = "; ".join(
            f"{what}: {keys[:5]}{' ...' if len(keys) > 5 else ''}"
            for what, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("shape mismatch", sorted(shapes)),
            )
            if keys
        )
        raise ModelFileError(f"reference weights do not fit {model.config.family}: {detail}")
    model.load_state_dict(state)
