"""Load weight files into a built model: worldflux's own layout or a reference implementation's.

``create_world_model("tdmpc2:5m", weights="walker-walk-1.pt")`` (and ``model.weights=...`` on the
command line) reads a state dict and loads it into the preset. A file in our own key layout loads
as it is; a file in a reference implementation's layout (the official TD-MPC2 agents, IRIS and
DIAMOND agents, ...) goes through the family's mapping:

* ``WorldModel.reference_overrides(state)`` (a classmethod) reads the spaces stored in the file
  (observation and action sizes, task count) as config overrides, applied where the caller did not
  set them;
* ``WorldModel.from_reference_state(state, config)`` maps the reference keys and layouts to ours.

Nothing in the file is executed: ``.safetensors`` files are read by safetensors and everything else
by ``torch.load(weights_only=True)``; a file that needs pickled code is refused with an error that
says so. Every problem (unreadable file, no mapping, missing, unexpected or mis-shaped tensors) is
one :class:`~worldflux.errors.ModelFileError` naming the file and the keys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from worldflux.errors import ModelFileError

#: Containers the reference trainers wrap their state dict in (checked in this order).
WRAPPERS = ("state_dict", "model", "module", "agent")
_SHOWN = 8


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The flat ``{key: tensor}`` of a weight file (safetensors or a weights-only torch file).

    Nested containers are flattened with dotted keys (``{"model": {...}}`` becomes the inner
    dict; ``{"tokenizer": {"a": t}}`` becomes ``{"tokenizer.a": t}``).
    """
    import pickle

    import torch

    from worldflux.loading import read_safetensors

    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelFileError(file, "weights file not found")
    if file.suffix == ".safetensors":
        return read_safetensors(file, None)
    try:
        data = torch.load(str(file), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ModelFileError(
            file,
            "the file needs more than torch.load(weights_only=True) (it pickles code or "
            f"objects: {' '.join(str(err).split())[:200]}); re-save its state dict with "
            "torch.save(model.state_dict(), path) or as safetensors",
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise ModelFileError(file, f"not a readable weights file ({err})") from None
    if not isinstance(data, Mapping):
        raise ModelFileError(file, f"expected a state dict, found a {type(data).__name__}")
    for key in WRAPPERS:
        inner = data.get(key)
        if isinstance(inner, Mapping) and inner:
            data = inner
            break
    flat = _flatten(data)
    if not flat:
        raise ModelFileError(file, "the file holds no tensors")
    return flat


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, torch.Tensor):
            out[name] = value
        elif isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
    return out


def to_own_layout(model: Any, state: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """``state`` in our layout: as it is, or through the family's reference mapping."""
    own = set(model.state_dict())
    if set(state) <= own:  # our own layout (save_pretrained weights, a state_dict() file)
        return dict(state)
    try:
        return dict(type(model).from_reference_state(state, model.config))
    except ModelFileError:
        raise
    except (KeyError, ValueError) as err:
        raise ModelFileError(
            path, f"not a {model.config.family} reference state dict: {err}"
        ) from None


def check_fit(model: Any, state: Mapping[str, Any], path: Path) -> None:
    """Refuse ``state`` unless it gives every parameter of ``model`` with its shape."""
    import torch

    own = model.state_dict()
    params = {n for n, _ in model.named_parameters()}
    missing = sorted(k for k in own if k not in state and k in params)
    unexpected = sorted(k for k in state if k not in own)
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and (not isinstance(v, torch.Tensor) or v.shape != own[k].shape)
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
        raise ModelFileError(
            path,
            f"the weights do not fit {getattr(model, 'model_id', None) or model.config.family}: "
            + "; ".join(problems),
        )


def load_state(model: Any, state: Mapping[str, Any], path: str | os.PathLike[str]) -> Any:
    """Load ``state`` (read from ``path``) into ``model``, ours or the family's reference layout.

    Buffers the file does not give (running statistics, counters) keep their built values.
    Returns ``model``.
    """
    import torch

    file = Path(path).expanduser()
    state = to_own_layout(model, state, file)
    check_fit(model, state, file)
    with torch.no_grad():
        own = model.state_dict()
        for key, value in state.items():
            own[key].copy_(value.to(own[key].dtype))
    return model


def load_weights_file(model: Any, path: str | os.PathLike[str]) -> Any:
    """Read the weight file ``path`` and load it into ``model`` (see :func:`load_state`)."""
    return load_state(model, read_state_dict(path), path)


def reference_overrides(
    model_cls: Any, state: Mapping[str, Any], path: str | os.PathLike[str]
) -> dict[str, Any]:
    """Config overrides (spaces) stored in ``state`` (read from ``path``) for the family class."""
    file = Path(path).expanduser()
    if not hasattr(model_cls, "reference_overrides"):
        return {}
    try:
        return dict(model_cls.reference_overrides(state))
    except (KeyError, ValueError, IndexError) as err:
        raise ModelFileError(file, f"cannot read the spaces from the weights: {err}") from None
