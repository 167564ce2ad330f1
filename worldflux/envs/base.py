"""The environment interface every worldflux loop talks to.

An :class:`Env` is a small, gymnasium-like protocol with normalised spaces, so the loop and the
replay never special-case a suite:

- observations are a dict ``{name: array}``; images are ``uint8`` ``(C, H, W)``, vectors are
  ``float32`` ``(D,)``; a single-modality env uses the one name ``"obs"``;
- actions are what models emit: a ``float32`` vector ``(A,)`` that is one-hot for discrete
  actions and lies in ``[-1, 1]`` for continuous ones; each wrapper converts it to the suite's
  own action (an index, or a rescaled box action).

Axis legend: ``N`` environments, ``C, H, W`` image channels, height, width, ``D`` vector size,
``A`` action size.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from worldflux.errors import ConfigError, ShapeError

#: The name of the observation of single-modality environments.
SINGLE = "obs"
OBS_KINDS = ("image", "vector")
ACTION_KINDS = ("discrete", "continuous")

Obs = dict[str, np.ndarray]


@dataclass(frozen=True)
class ObsSpace:
    """One observation modality: ``kind`` (image | vector) and ``shape`` (``(C, H, W)`` or ``(D,)``)."""

    kind: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.kind not in OBS_KINDS:
            raise ConfigError(f"observation kind must be one of {OBS_KINDS}, got {self.kind!r}")
        if self.kind == "image" and len(self.shape) != 3:
            raise ShapeError(f"image observations must be (C, H, W), got shape {self.shape}")
        if self.kind == "vector" and len(self.shape) != 1:
            raise ShapeError(f"vector observations must be (D,), got shape {self.shape}")

    @property
    def dtype(self) -> np.dtype:
        """``uint8`` for images, ``float32`` for vectors."""
        return np.dtype(np.uint8 if self.kind == "image" else np.float32)


@dataclass(frozen=True)
class EnvSpec:
    """Observation modalities and the action space of an environment."""

    obs: Mapping[str, ObsSpace]
    action_kind: str
    action_dim: int
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action_kind not in ACTION_KINDS:
            raise ConfigError(
                f"action kind must be one of {ACTION_KINDS}, got {self.action_kind!r}"
            )
        if self.action_dim < 1:
            raise ConfigError(f"action_dim must be >= 1, got {self.action_dim}")

    @property
    def single(self) -> bool:
        """Whether there is one modality (named :data:`SINGLE`)."""
        return list(self.obs) == [SINGLE]

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``create_world_model`` describing these spaces."""
        out: dict[str, Any] = {"action_spec": {"kind": self.action_kind, "dim": self.action_dim}}
        if self.single:
            out["obs_shape"] = tuple(self.obs[SINGLE].shape)
        else:
            out["observation_modalities"] = {
                k: {"kind": v.kind, "shape": tuple(v.shape)} for k, v in self.obs.items()
            }
        return out

    def describe(self) -> str:
        """One line, e.g. ``obs image (3, 64, 64), action discrete(3)``."""
        obs = ", ".join(f"{k}: {v.kind} {tuple(v.shape)}" for k, v in self.obs.items())
        return f"obs {{{obs}}}, action {self.action_kind}({self.action_dim})"

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (written next to offline datasets)."""
        return {
            "obs": {k: {"kind": v.kind, "shape": list(v.shape)} for k, v in self.obs.items()},
            "action_kind": self.action_kind,
            "action_dim": self.action_dim,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnvSpec:
        """Inverse of :meth:`to_dict`."""
        obs = {k: ObsSpace(v["kind"], tuple(v["shape"])) for k, v in data["obs"].items()}
        return cls(obs, str(data["action_kind"]), int(data["action_dim"]))


class Env(abc.ABC):
    """A single environment with normalised spaces (see the module docstring)."""

    spec: EnvSpec

    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> Obs:
        """Start an episode and return its first observation."""

    @abc.abstractmethod
    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool]:
        """Apply ``action (A,)``; return ``(obs, reward, terminated, truncated)``."""

    def render(self) -> np.ndarray:
        """An RGB frame ``(H, W, 3)`` uint8 for videos (defaults to the image observation)."""
        raise NotImplementedError(f"{type(self).__name__} cannot render")

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release resources."""

    def check_action(self, action: np.ndarray) -> np.ndarray:
        """Validate ``action (A,)`` and return it as float32."""
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != (self.spec.action_dim,):
            raise ShapeError(
                f"{type(self).__name__} expects an action of shape ({self.spec.action_dim},) "
                f"({self.spec.action_kind}), got {action.shape}"
            )
        return action


def discrete_index(action: np.ndarray) -> int:
    """The index of a one-hot (or logit-like) discrete action vector."""
    return int(np.argmax(action))


def rescale(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Map an action in ``[-1, 1]`` to the box ``[low, high]`` (clipping first)."""
    action = np.clip(action, -1.0, 1.0)
    return (low + (action + 1.0) * 0.5 * (high - low)).astype(np.float32)


def resize_image(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an ``(H, W, C)`` uint8 frame to ``size`` and return it as ``(C, h, w)`` uint8.

    Uses bilinear interpolation with antialiasing (torch, which the base install has), so no
    image library is needed.
    """
    import torch
    import torch.nn.functional as F

    if frame.ndim == 2:
        frame = frame[..., None]
    chw = np.ascontiguousarray(frame.transpose(2, 0, 1))
    if chw.shape[1:] == tuple(size):
        return chw.astype(np.uint8, copy=False)
    x = torch.from_numpy(chw).float()[None]
    y = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    return y[0].round().clamp(0, 255).to(torch.uint8).numpy()


def missing_extra(suite: str, extra: str, err: ImportError) -> ImportError:
    """The error raised when a suite's optional dependency is not installed."""
    return ImportError(
        f"the {suite} environments need the optional dependencies of worldflux[{extra}] "
        f"({err.name or err}); install them with: pip install 'worldflux[{extra}]'"
    )
