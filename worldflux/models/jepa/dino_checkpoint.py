"""Loading DINO-WM's released world-model checkpoints into ``jepa:dino_wm``.

The reference (gaoyuezhou/dino_wm @ 0a9492f, ``train.py`` ``save_ckpt``, ``plan.py``
``load_ckpt``) saves ``checkpoints/model_latest.pth`` as a dict of whole pickled modules
(``predictor``, ``action_encoder``, ``proprio_encoder``, ``decoder``, the ``encoder`` only when
it was trained) plus ``epoch`` and optimisers. A file of pickled modules can only be read by
running the reference's code, so worldflux never opens it: ``python -m worldflux.models.jepa.convert_dino_wm``
(run once, with the reference checkout, on a file the user trusts) re-saves each module's
``state_dict()`` as plain tensors, and this module reads that file with
``torch.load(weights_only=True)`` (or safetensors) and maps the reference's key layout onto ours.

Accepted layouts: nested ``{"predictor": {...}, "action_encoder": {...}, ...}`` (what the
converter writes) or the same flattened with dotted keys; worldflux's own ``state_dict()``
layout loads as it is. The reference's keys differ from ours in three places:

* the predictor's blocks sit under ``transformer.`` and its MLP under ``net.``
  (``predictor.transformer.layers.{i}.1.net.{j}`` is our ``predictor.layers.{i}.1.{j}``);
* the frozen DINOv2 sits under ``encoder.base_model.`` (``DinoV2Encoder``); released checkpoints
  normally leave it out, and then the encoder keeps the DINOv2 weights it was built with;
* the VQ-VAE decoder carries its codebook buffers ``decoder.quantize_b.*``, unused with
  ``quantize: False`` (DINO-WM's setting) and dropped.

Every problem is one :class:`~worldflux.errors.ModelFileError` naming the file and the keys.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from worldflux.errors import ModelFileError

#: The trainable parts a checkpoint must give (the encoder is optional: frozen DINOv2).
PARTS = ("predictor", "action_encoder", "proprio_encoder", "decoder")
_UNUSED = re.compile(r"^decoder\.quantize_b\.")
_SHOWN = 6


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for key, value in data.items():
        if isinstance(value, Tensor):
            out[prefix + str(key)] = value
        elif isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
    return out


def read_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """The flat ``{key: tensor}`` of a converted DINO-WM checkpoint (or a worldflux state dict)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelFileError(file, "the DINO-WM checkpoint file does not exist")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(file))
    try:
        data = torch.load(str(file), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelFileError(
            file,
            "this file pickles DINO-WM's modules (the reference's model_latest.pth), which "
            "worldflux never unpickles; convert it once with `python -m "
            "worldflux.models.jepa.convert_dino_wm --reference <dino_wm checkout> <file> "
            "<out.pt>`",
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise ModelFileError(file, f"not a readable weights file ({err})") from None
    if not isinstance(data, Mapping):
        raise ModelFileError(file, f"expected a dict of state dicts, found {type(data).__name__}")
    if isinstance(data.get("state_dict"), Mapping):  # a worldflux/Lightning checkpoint
        data = data["state_dict"]
    flat = _flatten(data)
    if not flat:
        raise ModelFileError(file, "the file holds no tensors")
    return flat


def reference_to_ours(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Keys of the reference layout renamed to ours; unused codebook buffers dropped."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if _UNUSED.match(key):
            continue
        new = key
        if new.startswith("encoder.base_model."):
            new = "encoder." + new[len("encoder.base_model.") :]
        if new.startswith("predictor.transformer."):
            new = "predictor." + new[len("predictor.transformer.") :]
            new = re.sub(r"^(predictor\.layers\.\d+\.1\.)net\.", r"\1", new)
        out[new] = value
    return out


def load_checkpoint(model: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Load a DINO-WM checkpoint into ``model`` (a :class:`~worldflux.models.jepa.dino_wm.DinoWM`).

    Every parameter of the predictor, the action and proprio encoders and (when the model has
    one) the decoder must be in the file with its shape; encoder weights are loaded when the file
    has them.

    Returns:
        ``{"loaded": parts loaded, "kept": parts left as built}``.

    Raises:
        ModelFileError: unreadable file, or missing, unexpected or mis-shaped keys (named).
    """
    file = Path(path).expanduser()
    state = reference_to_ours(read_checkpoint(file))
    own = model.state_dict()
    parts = [p for p in PARTS if getattr(model, p, None) is not None]
    if any(k.startswith("encoder.") for k in state):  # an encoder is all or nothing
        parts = [*parts, "encoder"]
    required = [k for k in own if k.split(".", 1)[0] in parts]
    missing = [k for k in required if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
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
        raise ModelFileError(file, "the DINO-WM checkpoint does not fit: " + "; ".join(problems))
    with torch.no_grad():
        for key, value in state.items():
            own[key].copy_(value.to(own[key].dtype))
    return {"loaded": parts, "kept": [] if "encoder" in parts else ["encoder"]}
