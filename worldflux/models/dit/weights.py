"""Released weights of the DiT family: the SD-v1 VAE and NWM's CDiT checkpoints.

- The frozen Stable-Diffusion VAE (``stabilityai/sd-vae-ft-ema``, the one NWM's ``train.py``
  loads) is a diffusers ``AutoencoderKL`` (the ``dit`` extra). It is read from a local path: a
  diffusers folder (``config.json`` + ``diffusion_pytorch_model.safetensors``), a ``.safetensors``
  file or a weights-only torch state dict, all in diffusers' key layout. It is never part of the
  world model's state dict (83,653,863 frozen parameters that every checkpoint would repeat).
- NWM checkpoints (``facebook/nwm`` on Hugging Face, ``{"model", "ema", "opt", "args", ...}``,
  written by ``train.py``) hold the CDiT in the reference layout, which :class:`CDiT` keeps
  name for name; ``_orig_mod.`` prefixes of compiled models are dropped. The EMA weights are
  the ones NWM evaluates with.

Nothing is pickled code: files are read with safetensors or ``torch.load(weights_only=True)``
(``argparse.Namespace``, which NWM stores under ``args``, is allowed as plain data).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from worldflux.errors import ConfigError, ModelFileError

#: The architecture of the SD-v1 VAE (diffusers ``AutoencoderKL`` config of sd-vae-ft-ema).
SD_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 256,
}


def _autoencoder_kl() -> Any:
    try:
        from diffusers.models import AutoencoderKL
    except ImportError as err:
        raise ConfigError(
            "latent 'sd_vae' needs diffusers: pip install 'worldflux[dit]' (or use latent: pixels)"
        ) from err
    return AutoencoderKL


def build_sd_vae(config: Mapping[str, Any] | None = None) -> nn.Module:
    """The SD-v1 VAE architecture (or ``config``'s ``AutoencoderKL``), frozen, in eval mode."""
    vae = _autoencoder_kl()(**dict(config or SD_VAE_CONFIG))
    return vae.requires_grad_(False).eval()


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A tensor mapping from a ``.safetensors`` file or a weights-only torch file."""
    if not path.is_file():
        raise ModelFileError(path, "no such weights file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is one clear error
        raise ModelFileError(path, f"not a readable weights-only torch file ({err})") from err
    if not isinstance(data, Mapping):
        raise ModelFileError(path, f"expected a mapping of tensors, got {type(data).__name__}")
    return dict(data)


def load_into(module: nn.Module, state: Mapping[str, Any], path: Path, what: str) -> None:
    """``module.load_state_dict(state)`` that names missing, unexpected and misshapen keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
        if wrong:
            parts.append(f"shape mismatches {wrong[:8]}")
        raise ModelFileError(path, f"the {what} weights do not fit: " + "; ".join(parts))
    module.load_state_dict(dict(state), strict=True)


def load_sd_vae(path: str | Path, config: Mapping[str, Any] | None = None) -> nn.Module:
    """The frozen SD VAE with the weights at ``path`` (diffusers folder or state-dict file).

    ``config`` replaces the SD-v1 architecture (tests use a small ``AutoencoderKL``).
    """
    path = Path(path).expanduser()
    vae = build_sd_vae(config)
    if path.is_dir():
        files = [path / "diffusion_pytorch_model.safetensors", path / "diffusion_pytorch_model.bin"]
        found = next((f for f in files if f.is_file()), None)
        if found is None:
            raise ModelFileError(path, "no diffusion_pytorch_model.safetensors or .bin inside")
        path = found
    load_into(vae, read_state_dict(path), path, "SD VAE")
    return vae.requires_grad_(False).eval()


def nwm_state_dict(path: str | Path, which: str = "ema") -> dict[str, Tensor]:
    """The CDiT weights of an NWM checkpoint (``which``: ``"ema"`` or ``"model"``).

    A bare state dict (no ``model``/``ema`` entries) is returned as it is.
    """
    if which not in ("ema", "model"):
        raise ConfigError(f"which must be 'ema' or 'model', got {which!r}")
    path = Path(path).expanduser()
    data = read_state_dict(path)
    if "model" in data or "ema" in data:
        if which not in data:
            raise ModelFileError(path, f"the checkpoint has no {which!r} entry")
        data = dict(data[which])
    return {k.replace("_orig_mod.", ""): v for k, v in data.items()}
