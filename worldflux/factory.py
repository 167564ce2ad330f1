"""The public factory: ``create_world_model`` and ``get_model_info``.

``create_world_model`` accepts a preset id, an alias, a config object, a composed Hydra model
node, or a local path (a ``save_pretrained`` directory or a Lightning checkpoint), and returns the
family's LightningModule. Loading never runs code from disk: weights are read without pickle
(safetensors, or ``torch.load(weights_only=True)``) and every ``_target_`` passes the
instantiation gate.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from worldflux import catalog
from worldflux.config import (
    apply_overrides,
    component_file,
    component_override_args,
    compose_model,
    config_class,
    node_to_config,
)
from worldflux.core.config import WorldModelConfig, structured_to_object
from worldflux.errors import ComponentError, ConfigError, UnknownModelError, WorldFluxError

API_VERSIONS = ("v3", "v0.2")
NATIVE_BACKEND = "native_torch"
#: Legacy (v0.2) action-kind names accepted behind the compatibility adapter.
_LEGACY_ACTION_KINDS = {"box": "continuous", "categorical": "discrete"}


def create_world_model(
    model: Any,
    *,
    obs_shape: tuple[int, ...] | None = None,
    action_dim: int | None = None,
    observation_modalities: dict[str, dict[str, Any]] | None = None,
    action_spec: dict[str, Any] | None = None,
    component_overrides: dict[str, object] | None = None,
    device: str = "cpu",
    api_version: str = "v3",
    backend: str = NATIVE_BACKEND,
    **kwargs: Any,
) -> Any:
    """Create a world model.

    Args:
        model: a preset id (``"dreamerv3:size12m"``), an alias (``"dreamer-large"``), a config
            object from :func:`worldflux.get_config`, a composed model node, or a local path
            (a ``save_pretrained`` directory or a ``.ckpt`` training checkpoint).
        obs_shape: observation-shape override, e.g. ``(39,)`` or ``(3, 64, 64)``.
        action_dim: action-dimension override (the preset's default is typically 6).
        observation_modalities: ``{name: {"kind": "image"|"vector", "shape": (...)}}``: one
            encoder and decoder per modality; the model then takes a dict of observations.
        action_spec: ``{"kind": "continuous"|"discrete", "dim": int, "num_actions": int}``.
        component_overrides: slot -> a component id (a file in ``conf/model/<family>/<slot>/``),
            a component class (built with the slot's arguments) or a built ``nn.Module``.
        device: where the model is placed.
        api_version: ``"v3"`` (current) or ``"v0.2"`` (legacy adapter, deprecated).
        backend: ``"native_torch"`` returns the LightningModule; an official backend returns an
            :class:`~worldflux.backends.OfficialBackendHandle`.
        **kwargs: model-specific config overrides, validated like :func:`worldflux.get_config`.

    Returns:
        The family's :class:`~worldflux.core.model.WorldModel` (a LightningModule), the legacy
        adapter for ``api_version="v0.2"``, or a backend handle.

    Raises:
        ValueError: unknown model (with close matches), bad ``api_version``, bad action kind,
            unknown config keys, unknown component slots or ids.
    """
    if api_version not in API_VERSIONS:
        raise ConfigError(f"api_version must be one of {API_VERSIONS}, got {api_version!r}")
    overrides = dict(kwargs)
    if obs_shape is not None:
        overrides["obs_shape"] = [int(s) for s in obs_shape]
    if action_dim is not None:
        overrides["action_dim"] = int(action_dim)
    if observation_modalities is not None:
        overrides["observation_modalities"] = {
            str(k): {"kind": v.get("kind"), "shape": [int(s) for s in v["shape"]]}
            for k, v in observation_modalities.items()
        }
    if action_spec is not None:
        overrides.update(_action_spec_overrides(action_spec, api_version))
    string_components = {k: v for k, v in (component_overrides or {}).items() if isinstance(v, str)}

    model_id = None
    if isinstance(model, (str, os.PathLike)) and _is_local_path(model):
        if backend != NATIVE_BACKEND:
            raise ConfigError(f"backend {backend!r} takes a preset id, not a local path")
        if component_overrides:
            raise ComponentError("component_overrides cannot be applied when loading a saved model")
        built = load_pretrained(model, device=device, **overrides)
        return _legacy(built) if api_version == "v0.2" else built
    if isinstance(model, str):
        model_id, _ = catalog.resolve(model)
        node = compose_model(catalog.id_to_path(model))
        if string_components:
            node = compose_model(
                catalog.id_to_path(model),
                component_override_args(str(node.family), string_components),
            )
        config = node_to_config(node, **overrides)
    elif isinstance(model, WorldModelConfig):
        config = _with_overrides(model, overrides)
        if string_components:
            config = _swap_components(config, string_components)
    elif isinstance(model, Mapping) or OmegaConf.is_config(model):
        node = model
        meta = node.get("meta") if hasattr(node, "get") else None
        model_id = (meta or {}).get("model_id") if isinstance(meta, Mapping) else None
        config = node_to_config(node, **overrides)
        if string_components:
            config = _swap_components(config, string_components)
    else:
        raise UnknownModelError(
            f"model must be a preset id, alias, config object or local path, got {type(model)!r}"
        )

    if backend != NATIVE_BACKEND:
        from worldflux.backends import make_handle

        return make_handle(backend, model_id, config, device)

    built = build(config, device=device)
    for slot, value in (component_overrides or {}).items():
        if not isinstance(value, str):
            _install_component(built, slot, value)
    built.model_id = model_id
    return _legacy(built) if api_version == "v0.2" else built


def build(config: WorldModelConfig, device: str = "cpu") -> Any:
    """Instantiate the LightningModule for a validated config and move it to ``device``."""
    from worldflux.core.instantiate import resolve_target

    cls = resolve_target(config._target_)
    return cls(config.to_dict()).to(device)


def get_model_info(model: str) -> dict[str, Any]:
    """Describe a preset: description, params, type, default_obs, maturity, model_id, the exact
    trainable parameter count (``num_parameters``) for the preset's default spaces, and ``alias``
    when asked through an alias.

    Raises:
        ValueError: unknown model, with close matches.
    """
    preset_id, alias = catalog.resolve(model)
    out = catalog.info(preset_id)
    out["num_parameters"] = count_parameters(preset_id)
    if alias is not None:
        out["alias"] = alias
    return out


@functools.lru_cache(maxsize=64)
def count_parameters(preset_id: str) -> int:
    """Exact trainable parameter count of a preset at its default spaces (built on ``meta``)."""
    import torch

    from worldflux.config import get_config

    with torch.device("meta"):
        return int(build(get_config(preset_id), device="meta").num_parameters())


# ---------------------------------------------------------------------------- helpers
def _action_spec_overrides(spec: Mapping[str, Any], api_version: str) -> dict[str, Any]:
    kind = spec.get("kind", "discrete")
    if api_version == "v0.2":
        kind = _LEGACY_ACTION_KINDS.get(kind, kind)
    if kind not in ("discrete", "continuous"):
        raise ConfigError(
            f"unsupported action kind {kind!r} for api_version={api_version!r}; "
            "supported kinds: 'discrete', 'continuous'"
        )
    out: dict[str, Any] = {"action_kind": kind}
    dim = spec.get("num_actions") if kind == "discrete" else None
    dim = dim if dim is not None else spec.get("dim")
    if dim is not None:
        out["action_dim"] = int(dim)
    return out


def _with_overrides(config: WorldModelConfig, overrides: Mapping[str, Any]) -> WorldModelConfig:
    data = config.to_dict()
    apply_overrides(data, type(config), overrides)
    return structured_to_object(type(config), data)


def _swap_components(config: WorldModelConfig, choices: Mapping[str, str]) -> WorldModelConfig:
    """Replace component nodes of ``config`` by the files ``choices`` names."""
    import yaml

    data = config.to_dict()
    for slot, choice in choices.items():
        data[slot] = yaml.safe_load(component_file(config.family, slot, choice).read_text())
    return structured_to_object(type(config), data)


def _install_component(model: Any, slot: str, value: Any) -> None:
    import inspect

    from torch import nn

    if inspect.isclass(value):
        args = model.component_arguments(slot)
        try:
            value = value(**args)
        except TypeError as err:
            raise ComponentError(
                f"cannot build {value.__name__} for slot {slot!r} with the slot's arguments "
                f"{sorted(args)}: {err}"
            ) from None
    if not isinstance(value, nn.Module):
        raise ComponentError(
            f"component_overrides[{slot!r}] must be a component id, class or nn.Module, "
            f"got {type(value)!r}"
        )
    model.replace_component(slot, value.to(model.device))


def _legacy(model: Any) -> Any:
    from worldflux.legacy import LegacyWorldModelV02

    warnings.warn(
        "api_version='v0.2' is deprecated: the legacy adapter will be removed; use the v3 "
        "WorldModel methods directly",
        DeprecationWarning,
        stacklevel=3,
    )
    return LegacyWorldModelV02(model)


def _is_local_path(model: str | os.PathLike[str]) -> bool:
    text = os.fspath(model)
    if Path(text).exists():
        return True
    looks_like_path = text.startswith((".", "/", "~")) or os.sep in text or text.endswith(".ckpt")
    if looks_like_path and ":" not in text:
        raise UnknownModelError(f"no saved model at {text!r} (the path does not exist)")
    return False


# ---------------------------------------------------------------------------- loading
def load_pretrained(path: str | os.PathLike[str], device: str = "cpu", **overrides: Any) -> Any:
    """Load a ``save_pretrained`` directory, a run directory, or a Lightning checkpoint file.

    Nothing from disk is executed: weights are read with safetensors or
    ``torch.load(weights_only=True)`` and ``_target_`` passes the instantiation gate.
    """
    from worldflux.core import model as core

    p = Path(path).expanduser()
    if p.is_dir():
        for candidate in (p, p / "export", p / "pretrained"):
            if (candidate / core.CONFIG_FILE).is_file() and (
                candidate / core.WEIGHTS_FILE
            ).is_file():
                return _load_directory(candidate, device, overrides)
        ckpt = p / "checkpoints" / "last.ckpt"
        if ckpt.is_file():
            return _load_checkpoint(ckpt, device, overrides)
        raise UnknownModelError(
            f"{p} is not a saved model: expected {core.CONFIG_FILE} and {core.WEIGHTS_FILE} "
            "(from save_pretrained) or checkpoints/last.ckpt"
        )
    return _load_checkpoint(p, device, overrides)


def _config_from_plain(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> WorldModelConfig:
    from worldflux.core.instantiate import check_target

    if not isinstance(data, Mapping) or "family" not in data or "_target_" not in data:
        raise WorldFluxError("saved config lacks 'family' and '_target_'")
    check_target(data["_target_"])
    cls = config_class(str(data["family"]))
    plain = dict(data)
    apply_overrides(plain, cls, overrides)
    return structured_to_object(cls, plain)


def _load_directory(path: Path, device: str, overrides: Mapping[str, Any]) -> Any:
    import yaml
    from safetensors.torch import load_file

    from worldflux.core import model as core

    config = _config_from_plain(yaml.safe_load((path / core.CONFIG_FILE).read_text()), overrides)
    built = build(config)
    built.load_state_dict(load_file(str(path / core.WEIGHTS_FILE)), strict=True)
    return built.to(device)


def _load_checkpoint(path: Path, device: str, overrides: Mapping[str, Any]) -> Any:
    import torch

    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - report any unreadable file the same way
        raise UnknownModelError(f"cannot read checkpoint {path}: {err}") from None
    hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, Mapping) else {}
    if "config" not in hparams or "state_dict" not in ckpt:
        raise UnknownModelError(f"{path} is not a worldflux checkpoint (no config hyperparameters)")
    config = _config_from_plain(hparams["config"], overrides)
    built = build(config)
    built.load_state_dict(ckpt["state_dict"], strict=True)
    return built.to(device)


__all__ = ["create_world_model", "get_model_info", "build", "load_pretrained", "count_parameters"]
