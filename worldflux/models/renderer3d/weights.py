"""torch-gqn state dicts in our GQN: the key mapping and the spaces the file stores.

iShohei220/torch-gqn @ c0156c7 saves ``model.state_dict()`` of its ``GQN`` (``train.py``,
``models/model-<step>.pt``); it publishes no trained weights, so this serves users' own
torch-gqn checkpoints and the same-weights comparison (``scripts/compare_renderer3d_official.py``).
Only the "pool" representation is mapped (its ``phi.conv1..conv8`` are our ``encoder.*``); the
cores and heads keep their names under ``renderer.`` (``inference_core[.l].*``,
``generation_core[.l].*`` with ``core.{forget,input,output,state}``, ``eta_pi``, ``eta_g``,
``eta_e``). The reference has no transition: a file loads into a model with
``action_conditioned=False`` (what :func:`reference_overrides` returns), or strictly into the
GQN parts of an action-conditioned one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from worldflux.errors import ModelFileError

#: how errors name the state dict (the file's path is added by worldflux.weights)
SOURCE = "torch-gqn state dict"
#: reference prefix -> ours
PREFIXES = {
    "phi.": "encoder.",
    "inference_core.": "renderer.inference_core.",
    "generation_core.": "renderer.generation_core.",
    "eta_pi.": "renderer.eta_pi.",
    "eta_g.": "renderer.eta_g.",
    "eta_e.": "renderer.eta_e.",
}


def reference_to_ours(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our state dict for a torch-gqn ``GQN(representation="pool")`` state dict.

    Raises:
        ModelFileError: naming the keys that belong to no part of the pool GQN (e.g. the
            ``tower``/``pyramid`` representations' or a ``DataParallel`` ``module.`` prefix).
    """
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in state.items():
        prefix = next((p for p in PREFIXES if key.startswith(p)), None)
        if prefix is None or (prefix == "phi." and not key.startswith("phi.conv")):
            unknown.append(key)
            continue
        out[PREFIXES[prefix] + key[len(prefix) :]] = value
    if unknown:
        raise ModelFileError(
            SOURCE,
            f"not a torch-gqn pool-representation GQN state dict: unexpected keys {unknown[:5]}"
            + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""),
        )
    return out


def reference_overrides(state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Config overrides for the sizes a torch-gqn state dict stores."""
    try:
        latent = int(state["phi.conv8.weight"].shape[0])
        channels = int(state["eta_g.weight"].shape[1])
        z_channels = int(state["eta_pi.weight"].shape[0]) // 2
    except KeyError as err:
        raise ModelFileError(
            SOURCE, f"not a torch-gqn GQN state dict: missing {err.args[0]!r}"
        ) from None
    steps = sorted(
        {
            int(k.split(".")[1])
            for k in state
            if k.startswith("generation_core.") and k.split(".")[1].isdigit()
        }
    )
    overrides: dict[str, Any] = {
        "latent_dim": latent,
        "core_channels": channels,
        "z_channels": z_channels,
        "shared_core": not steps,
        "action_conditioned": False,
    }
    if steps:
        overrides["gqn_steps"] = steps[-1] + 1
    return overrides
