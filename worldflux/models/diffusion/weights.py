"""Loading DIAMOND's released agents (``eloialonso/diamond`` on the Hugging Face Hub,
``atari_100k/models/<Game>.pt``) into :class:`~worldflux.models.diffusion.module.Diffusion`.

A released file is the reference ``Agent``'s state dict (``denoiser.*``, ``rew_end_model.*``,
``actor_critic.*``), sometimes nested under a ``"agent"`` or ``"state_dict"`` entry, and keys of a
``torch.compile``d module carry ``_orig_mod.``. Our parameter names are the reference's, so the
mapping strips those wrappers and checks every key and shape. Files are read with
``torch.load(weights_only=True)`` (no pickled code) or safetensors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from worldflux.errors import ModelFileError

PARTS = ("denoiser", "rew_end_model", "actor_critic")
_SHOWN = 5


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The tensors of a released file (``.pt`` read weights-only, or ``.safetensors``)."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(p, "weights file is missing")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(p)))
    try:
        data = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - every unreadable file is one clear error
        raise ModelFileError(
            p, f"not a weights-only state dict (torch.load(weights_only=True) failed: {err})"
        ) from None
    for key in ("agent", "state_dict"):
        if isinstance(data, Mapping) and isinstance(data.get(key), Mapping):
            data = data[key]
    if not isinstance(data, Mapping):
        raise ModelFileError(p, f"expected a state dict, got {type(data).__name__}")
    return {str(k): v for k, v in data.items() if isinstance(v, Tensor)}


def official_to_ours(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map the reference Agent's keys to ours (drops ``module.``/``_orig_mod.`` wrappers)."""
    out = {}
    for key, value in state.items():
        parts = [p for p in key.split(".") if p not in ("_orig_mod", "module")]
        out[".".join(parts)] = value
    return out


def num_actions_of(state: Mapping[str, Tensor]) -> int | None:
    """The action count stored in a reference state dict (its actor head), if present."""
    w = official_to_ours(state).get("actor_critic.actor_linear.weight")
    return int(w.shape[0]) if w is not None else None


def load_official(model: Any, path: str | os.PathLike[str], parts: tuple[str, ...] = PARTS) -> Any:
    """Load a released DIAMOND agent into ``model`` (in place; returns it).

    Args:
        model: a :class:`Diffusion` built for the checkpoint's spaces (64x64x3, its action count).
        path: the ``.pt`` (or ``.safetensors``) file.
        parts: the components to load (the reference's ``load_denoiser`` etc. switches).

    Raises:
        ModelFileError: naming missing, unexpected and shape-mismatched keys.
    """
    state = official_to_ours(read_state_dict(path))
    own = {k: v for k, v in model.state_dict().items() if k.split(".", 1)[0] in parts}
    given = {k: v for k, v in state.items() if k.split(".", 1)[0] in parts}
    missing = [k for k in own if k not in given]
    unexpected = [k for k in given if k not in own]
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in given.items()
        if k in own and v.shape != own[k].shape
    ]
    problems = [
        f"{label} ({len(keys)}): {', '.join(keys[:_SHOWN])}{', ...' if len(keys) > _SHOWN else ''}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch (file vs model)", mismatched),
        )
        if keys
    ]
    if problems:
        hint = ""
        n = num_actions_of(state)
        if n is not None and n != model.config.action_dim:
            hint = f" (the file is for {n} actions, the model has action_dim={model.config.action_dim})"
        raise ModelFileError(
            Path(path), "the weights do not fit the DIAMOND model: " + "; ".join(problems) + hint
        )
    model.load_state_dict(given, strict=False)
    return model


def from_official(
    path: str | os.PathLike[str], preset: str = "diffusion:base", **overrides: Any
) -> Any:
    """Build ``preset`` for the action count stored in a released file and load it.

    Example: ``from_official("Breakout.pt")`` (from ``hf_hub_download("eloialonso/diamond",
    "atari_100k/models/Breakout.pt")``) gives the released Breakout agent.
    """
    from worldflux import create_world_model

    state = read_state_dict(path)
    n = num_actions_of(state)
    if n is not None:
        overrides.setdefault("action_dim", n)
    return load_official(create_world_model(preset, **overrides), path)
