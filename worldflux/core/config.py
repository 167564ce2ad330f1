"""The typed config base class shared by every family.

A family config is a dataclass that extends :class:`WorldModelConfig`. It is registered with
OmegaConf as a structured config, so YAML presets and overrides are checked against it (unknown
keys, wrong types); cross-field checks run in ``__post_init__``. This module imports neither
torch nor lightning.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from worldflux.core.validation import POSITIVE_INT, Range, check_range, check_types
from worldflux.errors import ConfigError, suggest

ACTION_KINDS = ("discrete", "continuous")
MODALITY_KINDS = ("image", "vector", "video")
#: The shape each modality kind takes, by number of axes.
MODALITY_SHAPES = {"vector": "(D,)", "image": "(C, H, W)", "video": "(T, C, H, W)"}
_KIND_BY_RANK = {1: "vector", 3: "image", 4: "video"}
_RANK_BY_KIND = {kind: rank for rank, kind in _KIND_BY_RANK.items()}


@dataclass
class WorldModelConfig:
    """Fields every family shares.

    A family config extends this class and may declare ``FIELD_RANGES`` (field -> :class:`Range`),
    ``KNOB_RANGES`` (component-node key -> :class:`Range`, checked in every component node that has
    the key) and ``SUPPORTED_MODALITIES`` (the modality kinds its encoders take). Values are checked
    strictly against the annotations (no ``"8"`` for an ``int``), and setting an attribute that is
    not a field raises :class:`ConfigError` with the closest field names.

    Attributes:
        _target_: import path of the family's LightningModule (resolved through the gate).
        family: family name, e.g. ``"dreamerv3"``.
        obs_shape: shape of a single observation, ``(C, H, W)`` for images, ``(D,)`` for vectors,
            ``(T, C, H, W)`` for videos (clips of ``T`` frames).
        action_dim: size of the action vector (the number of actions for discrete spaces).
        action_kind: ``"discrete"`` (one-hot actions) or ``"continuous"`` (in ``[-1, 1]``).
        observation_modalities: optional ``{name: {"kind": "image"|"vector"|"video",
            "shape": [...]}}``; when set, the model takes a dict of observations and
            ``obs_shape`` is ignored.
        phases: the training phases (:mod:`worldflux.core.phases`), declared in the family's
            base YAML; ``None`` for families that define their own ``training_step``.
        weights: a weight file :func:`worldflux.create_world_model` loads after building (ours or
            the family's reference layout, see :mod:`worldflux.weights`); ``model.weights=...``
            on the command line.
    """

    FIELD_RANGES: ClassVar[Mapping[str, Range]] = {"action_dim": POSITIVE_INT}
    #: Named settings (field overrides) in which the reference implementation was counted.
    REFERENCE_SETTINGS: ClassVar[dict[str, dict[str, Any]]] = {}
    KNOB_RANGES: ClassVar[Mapping[str, Range]] = {}
    SUPPORTED_MODALITIES: ClassVar[tuple[str, ...]] = MODALITY_KINDS

    _target_: str = MISSING
    _recursive_: bool = False
    _convert_: str = "all"
    family: str = MISSING
    obs_shape: list[int] = field(default_factory=lambda: [3, 64, 64])
    action_dim: int = 6
    action_kind: str = "discrete"
    observation_modalities: Optional[dict[str, Any]] = None
    phases: Any = None
    weights: Optional[str] = None

    def __post_init__(self) -> None:
        check_types(type(self), {k: getattr(self, k) for k in field_names(type(self))})
        if self.action_kind not in ACTION_KINDS:
            raise ConfigError(
                f"action_kind must be one of {ACTION_KINDS}, got {self.action_kind!r}"
            )
        for name in field_names(type(self)):
            value = getattr(self, name)
            if isinstance(value, float) and math.isnan(value):
                raise ConfigError(f"config field {name!r} is NaN")
        for name, rng in self.field_ranges().items():
            value = getattr(self, name)
            if value is not None:
                check_range(f"config field {name!r}", value, rng)
        self._check_components()
        for name, spec in self.modalities().items():
            _check_modality(name, spec, type(self).__name__, self.SUPPORTED_MODALITIES)

    def __setattr__(self, name: str, value: Any) -> None:
        # A misspelled attribute would otherwise be stored and silently ignored by the model.
        if name not in _field_set(type(self)) and not isinstance(
            getattr(type(self), name, None), property
        ):
            raise ConfigError(
                f"{type(self).__name__} has no field {name!r}."
                f"{suggest(name, field_names(type(self)))}"
            )
        object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup failed: add the closest names to the AttributeError.
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"{type(self).__name__} has no field {name!r}.{suggest(name, field_names(type(self)))}"
        )

    # ------------------------------------------------------------------ helpers
    @classmethod
    def field_ranges(cls) -> dict[str, Range]:
        """``FIELD_RANGES`` of this class and its bases (subclasses win)."""
        out: dict[str, Range] = {}
        for klass in reversed(cls.__mro__):
            out.update(getattr(klass, "FIELD_RANGES", {}) or {})
        return out

    def component_fields(self) -> list[str]:
        """Names of the fields holding component nodes (mappings with a ``_target_``)."""
        return [
            name
            for name in field_names(type(self))
            if isinstance(getattr(self, name), Mapping) and "_target_" in getattr(self, name)
        ]

    def _check_components(self) -> None:
        for slot in self.component_fields():
            node = getattr(self, slot)
            if not isinstance(node["_target_"], str):
                raise ConfigError(f"{slot}._target_ must be an import path string")
            for key, rng in self.KNOB_RANGES.items():
                if key in node and node[key] is not None:
                    check_range(f"config field '{slot}.{key}'", node[key], rng)

    def modalities(self) -> dict[str, dict[str, Any]]:
        """The observation modalities as ``{name: {"kind", "shape"}}``.

        Without ``observation_modalities`` this is one modality named ``"obs"`` whose kind follows
        from ``obs_shape`` (1 axis: vector, 3: image, 4: video).
        """
        if self.observation_modalities:
            out = {}
            for name, spec in self.observation_modalities.items():
                if not isinstance(spec, Mapping) or "shape" not in spec:
                    raise ConfigError(
                        f"observation modality {name!r} must be a dict with 'kind' and 'shape', "
                        f"got {spec!r}"
                    )
                unknown = sorted(set(spec) - {"kind", "shape"})
                if unknown:
                    raise ConfigError(
                        f"observation modality {name!r} has unknown keys {unknown}; it takes "
                        "'kind' and 'shape'"
                    )
                shape = _shape(f"observation modality {name!r}", spec["shape"])
                kind = spec.get("kind") or _KIND_BY_RANK.get(len(shape), "vector")
                out[str(name)] = {"kind": kind, "shape": shape}
            return out
        shape = _shape("obs_shape", self.obs_shape)
        return {"obs": {"kind": _KIND_BY_RANK.get(len(shape), "vector"), "shape": shape}}

    @property
    def multimodal(self) -> bool:
        """Whether the model takes a dict of observations."""
        return bool(self.observation_modalities)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data copy (lists, dicts, scalars) suitable for hparams and YAML."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorldModelConfig:
        """Validate ``data`` against this schema and return a config object."""
        return structured_to_object(cls, data)


def _shape(where: str, shape: Any) -> list[int]:
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise ConfigError(f"{where}: shape must be a list of ints, got {shape!r}")
    for s in shape:
        if not isinstance(s, int) or isinstance(s, bool):
            raise ConfigError(
                f"{where}: shape must be a list of ints, got {list(shape)!r} "
                f"({type(s).__name__} {s!r}); values are never converted"
            )
    return list(shape)


def _check_modality(name: str, spec: Mapping[str, Any], owner: str, supported: tuple) -> None:
    kind, shape = spec["kind"], spec["shape"]
    if kind not in MODALITY_KINDS:
        raise ConfigError(
            f"observation modality {name!r}: kind must be one of {MODALITY_KINDS}, got {kind!r}"
        )
    expected = MODALITY_SHAPES[kind]
    if len(shape) != _RANK_BY_KIND[kind] or any(s < 1 for s in shape):
        raise ConfigError(
            f"observation modality {name!r} of kind {kind!r} needs a shape {expected} of "
            f"positive sizes, got {tuple(shape)}"
        )
    if kind not in supported:
        raise ConfigError(
            f"{owner} cannot take observation modality {name!r} of kind {kind!r}; this family "
            f"takes {list(supported)}"
        )


_FIELD_SETS: dict[type, frozenset[str]] = {}


def _field_set(cls: type) -> frozenset[str]:
    # cached per class: __setattr__ runs for every field of every config built
    if cls not in _FIELD_SETS:
        _FIELD_SETS[cls] = frozenset(field_names(cls))
    return _FIELD_SETS[cls]


def base_default(family: str, key: str) -> Any:
    """A default that lives only in ``conf/model/<family>/base.yaml`` (e.g. ``phases``).

    Dataclass fields whose default is a nested YAML structure read it from the base preset, so it
    is written once; the YAML is read as plain data, never composed or resolved.
    """
    import copy

    return copy.deepcopy(_base_yaml(family).get(key))


@functools.cache
def _base_yaml(family: str) -> dict[str, Any]:
    import yaml

    from worldflux.catalog import conf_dir

    return yaml.safe_load((conf_dir() / "model" / family / "base.yaml").read_text()) or {}


def to_plain(node: Any) -> dict[str, Any]:
    """A resolved plain ``dict`` copy of a config mapping (``DictConfig`` or ``dict``)."""
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=True)
    if not isinstance(node, Mapping):
        raise ConfigError(f"expected a mapping, got {type(node).__name__}: {node!r}")
    return _plain(node)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def field_names(cls: type) -> list[str]:
    """Names of the dataclass fields of ``cls``."""
    return [f.name for f in dataclasses.fields(cls)]


def structured_to_object(cls: type, data: Mapping[str, Any] | Any) -> Any:
    """Merge ``data`` into the structured schema of ``cls`` and build the dataclass.

    Raises:
        ConfigError: naming the offending key, with close matches for unknown keys, or the field
            and expected type for type errors.
    """
    if OmegaConf.is_config(data):
        data = OmegaConf.to_container(data, resolve=True)
    data = dict(data)
    unknown = [k for k in data if k not in field_names(cls)]
    if unknown:
        key = unknown[0]
        raise ConfigError(
            f"unknown config key {key!r} for {cls.__name__}.{suggest(key, field_names(cls))}"
        )
    check_types(cls, data)
    schema = OmegaConf.structured(cls)
    for key, value in data.items():
        if isinstance(value, Mapping) and "_target_" in value:
            # A component node replaces the default one: merging would leak the default
            # class's arguments into another class (e.g. a swapped encoder).
            schema[key] = {}
    try:
        merged = OmegaConf.merge(schema, data)
        for key, value in data.items():
            # A component node replaces the default one: merging would hand a component chosen
            # by name the old component's arguments (``mults`` reaching an MLP encoder).
            if isinstance(value, Mapping) and "_target_" in value:
                merged[key] = value
        obj = OmegaConf.to_object(merged)
    except ConfigError:
        raise
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or getattr(err, "key", None)
        ftype = _field_type(cls, str(key).split(".")[0]) if key else None
        msg = f"invalid value for config field {key!r}"
        if ftype is not None:
            msg += f" (expected {ftype})"
        raise ConfigError(f"{msg}: {err.msg if hasattr(err, 'msg') else err}") from None
    return obj


def _field_type(cls: type, name: str) -> str | None:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    return None
