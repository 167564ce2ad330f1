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
    node_to_config,
)
from worldflux.core.config import WorldModelConfig, structured_to_object
from worldflux.errors import ComponentError, ConfigError, ModelFileError, UnknownModelError

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
    weights: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> Any:
    """Create a world model.

    Args:
        model: a preset id (``"dreamerv3:size12m"``), an alias (``"dreamer-large"``), a config
            object from :func:`worldflux.get_config`, a composed model node, or a local path
            (a ``save_pretrained`` directory or a ``.ckpt`` training checkpoint).
        obs_shape: observation-shape override, e.g. ``(39,)`` or ``(3, 64, 64)``.
        action_dim: action-dimension override (the preset's default is typically 6).
        observation_modalities: ``{name: {"kind": "image"|"vector"|"video", "shape": (...)}}``
            (video shapes are ``(T, C, H, W)``): one encoder and decoder per modality; the model
            then takes a dict of observations. A family refuses kinds it cannot take.
        action_spec: ``{"kind": "continuous"|"discrete", "dim": int, "num_actions": int}``.
        component_overrides: slot -> a component id (a file in ``conf/model/<family>/<slot>/``),
            a component class (built with the slot's arguments) or a built ``nn.Module``.
        device: where the model is built: ``"cpu"``, ``"cuda"`` (built on the GPU, no host
            copy) or ``"meta"`` (shapes only, no memory allocated).
        api_version: ``"v3"`` (current) or ``"v0.2"`` (legacy adapter, deprecated).
        backend: ``"native_torch"`` returns the LightningModule; an official backend returns an
            :class:`~worldflux.backends.OfficialBackendHandle`.
        weights: a weight file to load after building (also the config field ``weights``):
            worldflux's own layout, or the family's reference implementation's (for example an
            official TD-MPC2 agent ``.pt``); the spaces stored in a reference file fill the
            config where not given. Read with safetensors or ``torch.load(weights_only=True)``
            (see :mod:`worldflux.weights`).
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
        # tuples become lists; nothing is converted, so `obs_shape="8"` is refused by the schema
        overrides["obs_shape"] = list(obs_shape) if isinstance(obs_shape, tuple) else obs_shape
    if action_dim is not None:
        overrides["action_dim"] = action_dim
    if observation_modalities is not None:
        overrides["observation_modalities"] = _modalities_override(observation_modalities)
    if action_spec is not None:
        overrides.update(_action_spec_overrides(action_spec, api_version))
    string_components: dict[str, Any] = {
        k: v
        for k, v in (component_overrides or {}).items()
        if isinstance(v, (str, os.PathLike)) and not _is_component_file(v)
    }
    file_components: dict[str, Any] = {
        k: v for k, v in (component_overrides or {}).items() if _is_component_file(v)
    }

    model_id = None
    loaded: dict[str, Any] = {}  # the weight file's path and state, read once
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
        overrides = _weights_overrides(node, weights, overrides, loaded)
        config = node_to_config(node, **overrides)
        if file_components:
            config = _swap_components(config, file_components)
    elif isinstance(model, WorldModelConfig):
        overrides = _weights_overrides(model.to_dict(), weights, overrides, loaded)
        config = _with_overrides(model, overrides)
        if string_components or file_components:
            config = _swap_components(config, {**string_components, **file_components})
    elif isinstance(model, Mapping) or OmegaConf.is_config(model):
        node = model
        meta = node.get("meta") if hasattr(node, "get") else None
        model_id = (meta or {}).get("model_id") if isinstance(meta, Mapping) else None
        overrides = _weights_overrides(node, weights, overrides, loaded)
        config = node_to_config(node, **overrides)
        if string_components or file_components:
            config = _swap_components(config, {**string_components, **file_components})
    else:
        raise UnknownModelError(
            f"model must be a preset id, alias, config object or local path, got {type(model)!r}"
        )

    if backend != NATIVE_BACKEND:
        from worldflux.backends import make_handle

        return make_handle(backend, model_id, config, device)

    built = build(config, device=device)
    for slot, value in (component_overrides or {}).items():
        if not isinstance(value, (str, os.PathLike)):
            _install_component(built, slot, value)
    built.model_id = model_id
    if loaded:
        from worldflux.weights import load_state

        load_state(built, loaded["state"], loaded["path"])
    return _legacy(built) if api_version == "v0.2" else built


def _weights_overrides(
    node: Any, weights: Any, overrides: dict[str, Any], loaded: dict[str, Any]
) -> dict[str, Any]:
    """``overrides`` plus what a weight file stores (its spaces) where the caller set nothing.

    The file is ``weights`` or, failing that, the config's own ``weights`` field; it is read once
    and kept in ``loaded`` (``path``, ``state``) for loading after the build.
    """
    path = weights if weights is not None else overrides.get("weights", node.get("weights"))
    if path is None:
        return overrides
    from worldflux import weights as weight_files
    from worldflux.core.instantiate import resolve_target

    cls = resolve_target(str(node["_target_"]))
    if getattr(cls, "loads_weights_itself", False):
        return {**overrides, "weights": str(path)}
    state = weight_files.read_state_dict(path)
    stored = weight_files.reference_overrides(cls, state, path)
    loaded.update(path=str(path), state=state)
    return {
        **{k: v for k, v in stored.items() if k not in overrides},
        **overrides,
        "weights": str(path),
    }


def build(config: WorldModelConfig, device: Any = "cpu") -> Any:
    """Instantiate the LightningModule for a validated config on ``device``.

    The family class is checked first (:func:`~worldflux.core.protocols.check_capabilities`).
    On an accelerator or the ``meta`` device the parameters are created there directly (inside a
    ``torch.device`` context), so nothing is first allocated and initialised on the CPU: a
    ``meta`` build allocates no parameter memory, a ``cuda`` build no host copy.

    Raises:
        CapabilityError: the family declares a capability it does not implement.
        ConfigError: ``device`` is not a valid torch device.
    """
    import torch

    from worldflux.core.instantiate import resolve_target
    from worldflux.core.protocols import check_capabilities

    target = _as_device(device)
    cls = resolve_target(config._target_)
    check_capabilities(cls)
    if target.type == "cpu":
        return cls(config.to_dict()).to(target)
    with torch.device(target):
        model = cls(config.to_dict())
    # tensors made without the default device (e.g. from numpy) still need the move
    return model.to(target)


def _as_device(device: Any) -> Any:
    import torch

    if not isinstance(device, (str, torch.device)):
        raise ConfigError(
            f"device must be a string such as 'cpu', 'cuda' or 'meta', got {device!r}"
        )
    try:
        target = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"invalid device {device!r}: {err}") from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for but CUDA is not available here")
    return target


def get_model_info(model: str) -> dict[str, Any]:
    """Describe a preset: description, params, type, default_obs, maturity, model_id, the exact
    trainable parameter count (``num_parameters``) for the preset's default spaces, and ``alias``
    when asked through an alias.

    Raises:
        ValueError: unknown model, with close matches.
    """
    preset_id, alias = catalog.resolve(model)
    out = catalog.info(preset_id)
    # Stored by scripts/catalog.py (checked against a build by tests/test_presets.py), so no
    # torch import; a preset added without running the script is counted on the meta device.
    stored = catalog.presets()[preset_id].meta.get("num_parameters")
    out["num_parameters"] = stored if isinstance(stored, int) else count_parameters(preset_id)
    if alias is not None:
        out["alias"] = alias
    return out


@functools.lru_cache(maxsize=64)
def count_parameters(preset_id: str) -> int:
    """Exact trainable parameter count of a preset at its default spaces (built on ``meta``)."""
    from worldflux.config import get_config

    return int(build(get_config(preset_id), device="meta").num_parameters())


# ---------------------------------------------------------------------------- helpers
def _modalities_override(mods: Any) -> dict[str, Any]:
    """``observation_modalities`` as plain data (tuples to lists), unconverted otherwise."""
    if not isinstance(mods, Mapping):
        raise ConfigError(
            f"observation_modalities must be a dict {{name: {{'kind', 'shape'}}}}, got {mods!r}"
        )
    out: dict[str, Any] = {}
    for name, spec in mods.items():
        if isinstance(spec, Mapping):
            spec = {k: list(v) if isinstance(v, tuple) else v for k, v in spec.items()}
        out[str(name)] = spec
    return out


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
        out["action_dim"] = dim
    return out


def _with_overrides(config: WorldModelConfig, overrides: Mapping[str, Any]) -> WorldModelConfig:
    data = config.to_dict()
    apply_overrides(data, type(config), overrides)
    return structured_to_object(type(config), data)


def _is_component_file(value: object) -> bool:
    """Whether a component override names a YAML file of the user's (not a file of the group)."""
    if isinstance(value, os.PathLike):
        return True
    return isinstance(value, str) and value.endswith((".yaml", ".yml"))


def _swap_components(
    config: WorldModelConfig, choices: Mapping[str, str | os.PathLike[str]]
) -> WorldModelConfig:
    """Replace component nodes of ``config`` by the files ``choices`` names.

    A choice is a component id (a file of ``conf/model/<family>/<slot>/``) or a path to the
    user's own YAML file. The file's node replaces the slot's node whole: the new component gets
    its own file's arguments plus the slot's runtime sizes, never the old component's knobs.
    """
    import yaml

    data = config.to_dict()
    ids = {k: str(v) for k, v in choices.items() if not _is_component_file(v)}
    component_override_args(config.family, ids)  # validates slots and ids
    for slot, choice in ids.items():
        data[slot] = yaml.safe_load(component_file(config.family, slot, choice).read_text())
    for slot, value in choices.items():
        if _is_component_file(value):
            _check_slot(config, slot)
            data[slot] = _component_file(Path(os.fspath(value)).expanduser(), slot)
    return structured_to_object(type(config), data)


def _check_slot(config: WorldModelConfig, slot: str) -> None:
    node = getattr(config, slot, None)
    if not isinstance(node, Mapping) or "_target_" not in node:
        valid = [k for k, v in config.to_dict().items() if isinstance(v, dict) and "_target_" in v]
        raise ComponentError(
            f"unknown component slot {slot!r} for family {config.family!r}; valid slots: {valid}"
        )


def _component_file(path: Path, slot: str) -> dict[str, Any]:
    """The ``_target_`` node of a user's component file (the target still passes the gate)."""
    import yaml

    from worldflux.core.instantiate import check_target

    try:
        node = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ComponentError(
            f"cannot read component file {path} for slot {slot!r}: {err}"
        ) from None
    if not isinstance(node, dict) or not isinstance(node.get("_target_"), str):
        raise ComponentError(f"component file {path} for slot {slot!r} needs a _target_")
    check_target(node["_target_"])
    return node


def _install_component(model: Any, slot: str, value: Any) -> None:
    import inspect

    from torch import nn

    if inspect.isclass(value):
        from worldflux.core.instantiate import accepted_arguments

        # The slot's arguments are offered; a class with another signature takes those it names.
        args = accepted_arguments(value, model.component_arguments(slot))
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
    ``torch.load(weights_only=True)`` and ``_target_`` passes the instantiation gate (see
    :mod:`worldflux.loading`).

    Raises:
        ModelFileError: a missing, unreadable, corrupt or non-fitting file, naming it.
        UnsafeTargetError: a ``_target_`` in the saved config that the gate refuses.
    """
    from worldflux import loading
    from worldflux.core import model as core

    p = Path(path).expanduser()
    if p.is_dir():
        for candidate in (p, p / "export", p / "pretrained"):
            if (candidate / core.CONFIG_FILE).is_file():
                return loading.load_directory(candidate, device, overrides)
        ckpt = p / "checkpoints" / "last.ckpt"
        if ckpt.is_file():
            return loading.load_checkpoint(ckpt, device, overrides)
        raise ModelFileError(
            p,
            f"not a saved model: expected {core.CONFIG_FILE} and {core.WEIGHTS_FILE} "
            "(from save_pretrained) or checkpoints/last.ckpt",
        )
    return loading.load_checkpoint(p, device, overrides)


__all__ = ["create_world_model", "get_model_info", "build", "load_pretrained", "count_parameters"]
