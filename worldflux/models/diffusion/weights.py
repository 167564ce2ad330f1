"""Loading DIAMOND's released agents (``eloialonso/diamond`` on the Hugging Face Hub,
``atari_100k/models/<Game>.pt``) into :class:`~worldflux.models.diffusion.module.Diffusion`.

Reference: eloialonso/diamond @ 5bcd159, ``src/agent.py`` (``Agent.load``: one state dict whose
keys start with ``denoiser.``, ``rew_end_model.`` or ``actor_critic.``; ``src/play.py`` downloads
the released files and builds the agent from ``config/agent/default.yaml`` with the game's action
count). A file may be nested under an ``"agent"`` or ``"state_dict"`` entry, and the keys of a
``torch.compile``d module carry ``_orig_mod.``. Our parameter names are the reference's, so the
mapping strips those wrappers; every key and shape is then checked. Files are read with
``torch.load(weights_only=True)`` or safetensors (:func:`worldflux.weights.read_state_dict`).

Two ways in: ``create_world_model("diffusion:base", weights=path)`` (also ``model.weights=`` and
``python -m worldflux.eval checkpoint=path model=diffusion/base``), through
:class:`ReleasedWeights`'s hooks, which read the action count from the file; or
:func:`load_official` for some parts only (the reference's ``load_denoiser`` etc. switches).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from worldflux.errors import ModelFileError

PARTS = ("denoiser", "rew_end_model", "actor_critic")
#: wrapper modules whose names a saved key may carry (``torch.compile``, DataParallel)
WRAPPERS = ("_orig_mod", "module")
#: the key whose rows are the action count (the policy head)
ACTION_KEY = "actor_critic.actor_linear.weight"


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The tensors of a released file (``.pt`` read weights-only, or ``.safetensors``)."""
    from worldflux.weights import read_state_dict as read

    return read(path)


def official_to_ours(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map the reference Agent's keys to ours (drops ``module.``/``_orig_mod.`` wrappers)."""
    out = {}
    for key, value in state.items():
        parts = [p for p in key.split(".") if p not in WRAPPERS]
        out[".".join(parts)] = value
    return out


def num_actions_of(state: Mapping[str, Tensor]) -> int | None:
    """The action count stored in a reference state dict (its actor head), if present."""
    w = official_to_ours(state).get(ACTION_KEY)
    return int(w.shape[0]) if w is not None else None


class ReleasedWeights:
    """The :mod:`worldflux.weights` hooks of :class:`~worldflux.models.diffusion.module.Diffusion`."""

    @classmethod
    def reference_overrides(cls, state: Mapping[str, Tensor]) -> dict[str, Any]:
        """The action count stored in the file (the policy head's rows), as a config override."""
        n = num_actions_of(state)
        return {} if n is None else {"action_dim": n}

    @classmethod
    def from_reference_state(cls, state: Mapping[str, Tensor], config: Any) -> dict[str, Tensor]:
        """Our state dict for a reference ``Agent`` state dict (wrapper prefixes dropped)."""
        mapped = official_to_ours(state)
        if not any(k.startswith(PARTS) for k in mapped):
            raise KeyError(
                "neither worldflux's nor eloialonso/diamond's Agent keys "
                f"(first key: {next(iter(state), None)!r})"
            )
        return mapped


def load_official(model: Any, path: str | os.PathLike[str], parts: tuple[str, ...] = PARTS) -> Any:
    """Load some ``parts`` of a released DIAMOND agent into ``model`` (in place; returns it).

    Args:
        model: a :class:`Diffusion` built for the checkpoint's spaces (64x64x3, its action count).
        path: the ``.pt`` (or ``.safetensors``) file.
        parts: the components to load (the reference's ``load_denoiser`` etc. switches).

    Raises:
        ModelFileError: naming missing, unexpected and shape-mismatched keys (and the file's action
            count where it differs from the model's).
    """
    import torch

    from worldflux.weights import check_fit

    file = Path(path).expanduser()
    state = official_to_ours(read_state_dict(file))
    given = {k: v for k, v in state.items() if k.split(".", 1)[0] in parts}
    # check_fit wants every parameter: give the parts not loaded their current values
    rest = {k: v for k, v in model.state_dict().items() if k.split(".", 1)[0] not in parts}
    try:
        check_fit(model, {**rest, **given}, file)
    except ModelFileError as err:
        n = num_actions_of(state)
        if n is None or n == model.config.action_dim:
            raise
        raise ModelFileError(
            file,
            f"{err.reason} (the file is for {n} actions, the model has "
            f"action_dim={model.config.action_dim})",
        ) from None
    with torch.no_grad():
        own = model.state_dict()
        for key, value in given.items():
            own[key].copy_(value.to(own[key].dtype))
    return model


def from_official(
    path: str | os.PathLike[str], preset: str = "diffusion:base", **overrides: Any
) -> Any:
    """Build ``preset`` for the action count stored in a released file and load it; the same as
    ``create_world_model(preset, weights=path, **overrides)``.

    Example: ``from_official("Breakout.pt")`` (from ``hf_hub_download("eloialonso/diamond",
    "atari_100k/models/Breakout.pt")``) gives the released Breakout agent.
    """
    from worldflux import create_world_model

    return create_world_model(preset, weights=path, **overrides)
