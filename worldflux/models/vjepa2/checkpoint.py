"""Loading the released V-JEPA 2 / V-JEPA 2-AC checkpoints from a local path.

The official files (facebookresearch/vjepa2 @ c2963a4, ``src/hub/backbones.py``) are
``torch.save`` dicts with ``encoder``, ``target_encoder`` and ``predictor`` state dicts whose keys
carry ``module.`` (DDP) and ``backbone.`` (multi-sequence wrapper) prefixes; the encoder's may also
hold an unused ``pos_embed``. With the prefixes removed the keys equal ours (the networks use the
reference's parameter names), so the mapping is: strip the prefixes, drop ``pos_embed``, load
strictly. Which encoder is loaded: the ``target_encoder`` (the one the AC stage and the released
hub models use) when present, else ``encoder``; the pretraining stage loads both.

Everything is read with ``torch.load(weights_only=True)`` (or safetensors for ``.safetensors``
files holding flat ``encoder.*`` / ``predictor.*`` keys), so a file cannot run code. A worldflux
training checkpoint (``checkpoints/last.ckpt`` of a ``vjepa2`` run) is read the same way, its
``target_encoder.target.*`` / ``encoder.*`` / ``predictor.*`` keys taken as the three parts: this
is how a ``vjepa2:pretrain_*`` run hands its encoder to the AC stage (``encoder_weights=``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from worldflux.errors import ModelFileError

_PREFIXES = ("module.", "backbone.")
_UNUSED = ("pos_embed",)  # sincos table of non-RoPE runs; V-JEPA 2 uses rotary positions
_SHOWN = 5


def clean_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Keys without the ``module.`` / ``backbone.`` prefixes, unused entries dropped."""
    out = {}
    for key, value in state.items():
        for prefix in _PREFIXES:
            key = key.replace(prefix, "")
        if key not in _UNUSED:
            out[key] = value
    return out


def read_official(path: str | Path) -> dict[str, dict[str, Tensor]]:
    """``{"encoder"|"target_encoder"|"predictor": state dict}`` of an official checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "no such checkpoint file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        flat = load_file(str(path))
        parts: dict[str, dict[str, Tensor]] = {}
        for key, value in flat.items():
            part, _, rest = key.partition(".")
            parts.setdefault(part, {})[rest] = value
        return parts
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is one clear error
        raise ModelFileError(path, f"not a weights-only torch checkpoint ({err})") from None
    if not isinstance(data, Mapping):
        raise ModelFileError(path, f"expected a dict of state dicts, got {type(data).__name__}")
    if isinstance(data.get("state_dict"), Mapping):  # a worldflux (Lightning) checkpoint
        return _split_ours(data["state_dict"])
    return {k: v for k, v in data.items() if isinstance(v, Mapping)}


def _split_ours(state: Mapping[str, Tensor]) -> dict[str, dict[str, Tensor]]:
    """A worldflux V-JEPA 2 state dict split into the official parts."""
    parts: dict[str, dict[str, Tensor]] = {}
    for key, value in state.items():
        for ours, part in (
            ("target_encoder.target.", "target_encoder"),
            ("encoder.", "encoder"),
            ("predictor.", "predictor"),
        ):
            if key.startswith(ours):
                parts.setdefault(part, {})[key[len(ours) :]] = value
                break
    return parts


def _load_part(module: nn.Module, state: Mapping[str, Tensor], what: str, path: Path) -> None:
    ours = module.state_dict()
    theirs = clean_keys(state)
    missing = sorted(set(ours) - set(theirs))
    unexpected = sorted(set(theirs) - set(ours))
    wrong = sorted(
        f"{k} {tuple(theirs[k].shape)} (expected {tuple(ours[k].shape)})"
        for k in set(ours) & set(theirs)
        if tuple(theirs[k].shape) != tuple(ours[k].shape)
    )
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("mismatched", wrong)):
        if keys:
            more = f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
            problems.append(f"{label} {what} keys: {', '.join(keys[:_SHOWN])}{more}")
    if problems:
        raise ModelFileError(path, "; ".join(problems))
    module.load_state_dict(theirs, strict=True)


def load_official(model: Any, path: str | Path, encoder_only: bool = False) -> None:
    """Load an official checkpoint into a built :class:`~.module.VJEPA2` or ``VJEPA2Pretrain``.

    Args:
        model: the built model.
        path: local checkpoint path.
        encoder_only: load the encoder(s) only (e.g. a pretraining checkpoint into the AC stage,
            whose predictor is a different network).

    Raises:
        ModelFileError: the file is missing or unreadable, lacks a needed part, or a part's keys
            or shapes do not fit (the message names them).
    """
    path = Path(path)
    if any(p.is_meta for p in model.parameters()):
        return  # built on the meta device (counting): there is nothing to load into
    parts = read_official(path)
    enc_key = "target_encoder" if "target_encoder" in parts else "encoder"
    for need in (enc_key,) if encoder_only else (enc_key, "predictor"):
        if need not in parts:
            raise ModelFileError(path, f"no {need!r} state dict; found {sorted(parts) or 'none'}")
    with torch.no_grad():
        if hasattr(model, "target_encoder"):  # pretraining: context and target encoders
            _load_part(model.encoder, parts.get("encoder", parts[enc_key]), "encoder", path)
            _load_part(model.target_encoder.target, parts[enc_key], "target_encoder", path)
        else:
            _load_part(model.encoder, parts[enc_key], "encoder", path)
        if not encoder_only:
            _load_part(model.predictor, parts["predictor"], "predictor", path)


def official_state_dicts(model: Any, prefix: str = "module.backbone.") -> dict[str, Any]:
    """Our weights in the official layout (for round trips and for handing a pretrained encoder
    from ``vjepa2:pretrain_*`` to the AC stage via ``weights=``)."""
    enc = model.target_encoder.target if hasattr(model, "target_encoder") else model.encoder
    return {
        "encoder": {prefix + k: v for k, v in model.encoder.state_dict().items()},
        "target_encoder": {prefix + k: v for k, v in enc.state_dict().items()},
        "predictor": {prefix + k: v for k, v in model.predictor.state_dict().items()},
    }
