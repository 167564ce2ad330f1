"""The typed config base class shared by every family.

A family config is a dataclass that extends :class:`WorldModelConfig`. It is registered with
OmegaConf as a structured config, so YAML presets and overrides are checked against it (unknown
keys, wrong types); cross-field checks run in ``__post_init__``. This module imports neither
torch nor lightning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from worldflux.errors import ConfigError, suggest

ACTION_KINDS = ("discrete", "continuous")
MODALITY_KINDS = ("image", "vector")


@dataclass
class WorldModelConfig:
    """Fields every family shares.

    Attributes:
        _target_: import path of the family's LightningModule (resolved through the gate).
        family: family name, e.g. ``"dreamerv3"``.
        obs_shape: shape of a single observation, ``(C, H, W)`` for images or ``(D,)`` for vectors.
        action_dim: size of the action vector (the number of actions for discrete spaces).
        action_kind: ``"discrete"`` (one-hot actions) or ``"continuous"`` (in ``[-1, 1]``).
        observation_modalities: optional ``{name: {"kind": "image"|"vector", "shape": [...]}}``;
            when set, the model takes a dict of observations and ``obs_shape`` is ignored.
        phases: the training phases (:mod:`worldflux.core.phases`), declared in the family's
            base YAML; ``None`` for families that define their own ``training_step``.
    """

    _target_: str = MISSING
    _recursive_: bool = False
    _convert_: str = "all"
    family: str = MISSING
    obs_shape: list[int] = field(default_factory=lambda: [3, 64, 64])
    action_dim: int = 6
    action_kind: str = "discrete"
    observation_modalities: Optional[dict[str, Any]] = None
    phases: Any = None

    def __post_init__(self) -> None:
        if self.action_kind not in ACTION_KINDS:
            raise ConfigError(
                f"action_kind must be one of {ACTION_KINDS}, got {self.action_kind!r}"
            )
        if self.action_dim < 1:
            raise ConfigError(f"action_dim must be >= 1, got {self.action_dim}")
        for name, spec in self.modalities().items():
            if spec["kind"] not in MODALITY_KINDS:
                raise ConfigError(
                    f"observation modality {name!r}: kind must be one of {MODALITY_KINDS}, "
                    f"got {spec['kind']!r}"
                )
            shape = spec["shape"]
            want = 3 if spec["kind"] == "image" else 1
            if len(shape) != want or any(int(s) < 1 for s in shape):
                expected = "(C, H, W)" if want == 3 else "(D,)"
                raise ConfigError(
                    f"observation modality {name!r} of kind {spec['kind']!r} needs a shape "
                    f"{expected} of positive sizes, got {tuple(shape)}"
                )

    # ------------------------------------------------------------------ helpers
    def modalities(self) -> dict[str, dict[str, Any]]:
        """The observation modalities as ``{name: {"kind", "shape"}}``.

        Without ``observation_modalities`` this is one modality named ``"obs"`` whose kind follows
        from ``obs_shape`` (3 dims: image, 1 dim: vector).
        """
        if self.observation_modalities:
            out = {}
            for name, spec in self.observation_modalities.items():
                if not isinstance(spec, Mapping) or "shape" not in spec:
                    raise ConfigError(
                        f"observation modality {name!r} must be a dict with 'kind' and 'shape', "
                        f"got {spec!r}"
                    )
                shape = [int(s) for s in spec["shape"]]
                kind = spec.get("kind") or ("image" if len(shape) == 3 else "vector")
                out[str(name)] = {"kind": str(kind), "shape": shape}
            return out
        shape = [int(s) for s in self.obs_shape]
        kind = "image" if len(shape) == 3 else "vector"
        return {"obs": {"kind": kind, "shape": shape}}

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
    schema = OmegaConf.structured(cls)
    try:
        merged = OmegaConf.merge(schema, data)
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
