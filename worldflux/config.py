"""``get_config``: compose a preset with Hydra and return the family's typed config.

Composition goes through Hydra's config loader on the ``conf`` tree without touching Hydra's
global state, so it works from plain Python and from inside a running Hydra app alike. This
module imports neither torch nor lightning.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from worldflux import catalog
from worldflux.core.config import WorldModelConfig, structured_to_object
from worldflux.errors import ComponentError, ConfigError, suggest
from worldflux.models import FAMILIES

#: Keys of a composed model node that never reach a constructor.
META_KEY = "meta"


@functools.lru_cache(maxsize=1)
def _loader() -> Any:
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path

    return ConfigLoaderImpl(config_search_path=create_config_search_path(str(catalog.conf_dir())))


def compose_model(config_path: str, overrides: list[str] | None = None) -> DictConfig:
    """Compose ``conf/model/<config_path>.yaml`` (plus Hydra ``overrides``) and return the node."""
    from hydra.errors import HydraException
    from hydra.types import RunMode

    try:
        cfg = _loader().load_configuration(
            config_name=None,
            overrides=[f"+model={config_path}", *(overrides or [])],
            run_mode=RunMode.RUN,
            from_shell=False,
        )
    except HydraException as err:
        raise ConfigError(f"could not compose model {config_path!r}: {err}") from None
    node = cfg.model
    OmegaConf.set_struct(node, False)
    return node


def config_class(family: str) -> type[WorldModelConfig]:
    """The typed config class of ``family``."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown model family {family!r}.{suggest(family, FAMILIES)}")
    module = importlib.import_module(FAMILIES[family])
    for obj in vars(module).values():
        # the schema is the config dataclass defined in the family's config.py for this family
        if (
            isinstance(obj, type)
            and issubclass(obj, WorldModelConfig)
            and obj.__module__ == module.__name__
            and getattr(obj, "family", None) == family
        ):
            return obj
    raise ConfigError(
        f"{module.__name__} defines no WorldModelConfig subclass with family = {family!r}"
    )


#: Component groups shared by every family at ``conf/<slot>/`` (files ``# @package model.<slot>``),
#: e.g. the planners.
SHARED_GROUPS = ("planner",)

#: Component slots whose config group is shared across families (``conf/model/<slot>/``).
SHARED_SLOTS = ("encoder",)


def component_group(family: str, slot: str) -> tuple[Path, str]:
    """The folder of ``slot``'s component files for ``family`` and its Hydra group name.

    A family's own group (``conf/model/<family>/<slot>/``) comes first; then the slot's shared
    group (``conf/model/<slot>/``, e.g. ``encoder``), whose files fit every family that follows the
    slot's contract; then a top-level group shared by all families (``conf/<slot>/``, e.g.
    ``planner``). Raises :class:`ComponentError` listing the valid slots.
    """
    model_root = catalog.conf_dir() / "model"
    for group in (f"{family}/{slot}", slot):
        if (model_root / group).is_dir() and list((model_root / group).glob("*.yaml")):
            return model_root / group, f"model/{group}"
    if slot in SHARED_GROUPS and (catalog.conf_dir() / slot).is_dir():
        return catalog.conf_dir() / slot, slot
    own = sorted(p.name for p in (model_root / family).iterdir() if p.is_dir())
    shared = sorted(p.name for p in model_root.iterdir() if p.name in SHARED_SLOTS and p.is_dir())
    raise ComponentError(
        f"unknown component slot {slot!r} for family {family!r}; valid slots: "
        f"{own + shared + list(SHARED_GROUPS)}"
    )


def component_file(family: str, slot: str, choice: str) -> Path:
    """The YAML file of component ``choice`` for ``slot`` of ``family`` (see :func:`component_group`)."""
    folder, _ = component_group(family, slot)
    options = sorted(p.stem for p in folder.glob("*.yaml"))
    if choice not in options:
        raise ComponentError(
            f"unknown component {choice!r} for slot {slot!r}; valid ids: {options}"
            f"{suggest(choice, options)}"
        )
    return folder / f"{choice}.yaml"


def component_override_args(family: str, overrides: Mapping[str, Any] | None) -> list[str]:
    """Hydra overrides selecting component files, for the string values of ``overrides``."""
    args = []
    for slot, choice in (overrides or {}).items():
        if not isinstance(choice, str):
            continue
        component_file(family, slot, choice)  # raises with the valid slots / ids
        _, group = component_group(family, slot)
        if group == slot:  # a top-level group shared by all families (conf/<slot>/)
            args.append(f"+{slot}={choice}")
            continue
        # a shared model group's default package is already model.<slot>, and Hydra names it so
        package = "" if group == f"model/{slot}" else f"@model.{slot}"
        args.append(f"{group}{package}={choice}")
    return args


def node_to_config(node: Mapping[str, Any] | DictConfig, **overrides: Any) -> WorldModelConfig:
    """Validate a composed model node (``meta`` dropped) plus ``overrides`` into a typed config."""
    raw = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    data: dict[str, Any] = copy.deepcopy({str(k): v for k, v in dict(raw).items()})  # type: ignore[arg-type]
    data.pop(META_KEY, None)
    family = data.get("family")
    if not isinstance(family, str):
        raise ConfigError("model config has no 'family' field")
    cls = config_class(family)
    apply_overrides(data, cls, overrides)
    return structured_to_object(cls, data)


def apply_overrides(data: dict[str, Any], cls: type, overrides: Mapping[str, Any]) -> None:
    """Apply ``overrides`` to the plain config ``data`` in place.

    Keys are field names; nested fields are reached with a dotted key (``"encoder.kernel"``) or a
    dict value, which is merged into the nested node. Unknown keys raise :class:`ConfigError`
    naming the key and the closest valid ones.
    """
    fields = [f.name for f in dataclasses.fields(cls)]
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if head not in fields:
            raise ConfigError(
                f"unknown config key {key!r} for {cls.__name__}.{suggest(head, fields)}"
            )
        if rest:
            _set_nested(data, head, rest.split("."), value, key)
        elif isinstance(value, Mapping) and isinstance(data.get(head), dict):
            for sub, sub_value in value.items():
                _set_nested(data, head, str(sub).split("."), sub_value, f"{head}.{sub}")
        else:
            data[head] = list(value) if isinstance(value, tuple) else value


def _set_nested(data: dict[str, Any], head: str, parts: list[str], value: Any, full: str) -> None:
    node = data.get(head)
    for i, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            valid = sorted(node) if isinstance(node, dict) else []
            raise ConfigError(
                f"unknown config key {full!r}.{suggest(part, valid)}"
                + (f" Valid keys here: {valid}" if valid else "")
            )
        if i == len(parts) - 1:
            node[part] = list(value) if isinstance(value, tuple) else value
        else:
            node = node[part]


def get_config(
    model: str,
    *,
    obs_shape: tuple[int, ...] | None = None,
    action_dim: int | None = None,
    **kwargs: Any,
) -> WorldModelConfig:
    """Compose a preset (id or alias) and return the family's validated config object.

    Args:
        model: a preset id (``"dreamerv3:size12m"``) or an alias (``"dreamer"``).
        obs_shape: observation shape override.
        action_dim: action dimension override.
        **kwargs: config field overrides; nested fields via dotted keys or dict values.

    Returns:
        The family's config dataclass (``DreamerV3Config``, ``TDMPC2Config``, ...).

    Raises:
        ValueError: an unknown model (with close matches) or a name not in ``type:size`` format.
        ConfigError: an unknown key (with close matches) or a value of the wrong type.

    Example:
        >>> get_config("dreamerv3:size12m").deter_dim
        2048
    """
    if not isinstance(model, str):
        raise ConfigError(f"model must be a preset id or alias string, got {type(model).__name__}")
    catalog.resolve(model)  # raises with suggestions
    node = compose_model(catalog.id_to_path(model))
    overrides = dict(kwargs)
    if obs_shape is not None:
        # a tuple becomes a list; anything else is passed on unconverted and type-checked
        overrides["obs_shape"] = list(obs_shape) if isinstance(obs_shape, tuple) else obs_shape
    if action_dim is not None:
        overrides["action_dim"] = action_dim
    return node_to_config(node, **overrides)
