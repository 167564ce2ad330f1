"""Gymnasium environments by id (extra ``worldflux[gym]``), with vector or pixel observations.

Any registered id works, including your own (``my_package.envs:MyEnv-v0`` imports
``my_package.envs`` first, gymnasium's own convention; see ``docs/howto/custom-env.md``).
``Box`` observations become vectors (flattened, float32); with ``obs="image"`` the frame from
``render()`` (``render_mode="rgb_array"``) is resized to ``size`` and returned as ``(3, H, W)``
uint8; ``obs="both"`` gives ``{"image": ..., "vector": ...}``. ``Discrete`` actions take one-hot
vectors, ``Box`` actions take values in ``[-1, 1]`` rescaled to the box bounds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worldflux.envs.base import (
    SINGLE,
    Env,
    EnvSpec,
    Obs,
    ObsSpace,
    discrete_index,
    missing_extra,
    rescale,
    resize_image,
)
from worldflux.errors import ConfigError, suggest

OBS_MODES = ("vector", "image", "both")


def import_gymnasium() -> Any:
    """Import gymnasium or raise an error naming the ``worldflux[gym]`` extra."""
    try:
        import gymnasium
    except ImportError as err:
        raise missing_extra("gymnasium", "gym", err) from None
    return gymnasium


def check_id(env_id: str) -> None:
    """Raise :class:`ConfigError` with close matches when ``env_id`` is not registered."""
    gym = import_gymnasium()
    if ":" in env_id:
        module = env_id.split(":", 1)[0]
        try:
            __import__(module)
        except ImportError as err:
            raise ConfigError(
                f"cannot import {module!r} for gymnasium id {env_id!r}: {err}"
            ) from None
        env_id = env_id.split(":", 1)[1]
    if env_id not in gym.envs.registry:
        raise ConfigError(
            f"unknown gymnasium environment id {env_id!r}.{suggest(env_id, gym.envs.registry)}"
        )


class GymEnv(Env):
    """A gymnasium environment behind the worldflux :class:`Env` interface.

    Args:
        id: the gymnasium id.
        obs: ``"vector"``, ``"image"`` or ``"both"``.
        size: ``(H, W)`` of image observations.
        action_repeat: environment steps per agent step (rewards are summed).
        max_episode_steps: passed to ``gymnasium.make`` when set.
        seed: seed of the first reset.
        kwargs: extra keyword arguments of ``gymnasium.make``.
    """

    def __init__(
        self,
        id: str,
        obs: str = "vector",
        size: tuple[int, int] | list[int] = (64, 64),
        action_repeat: int = 1,
        max_episode_steps: int | None = None,
        seed: int | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        if obs not in OBS_MODES:
            raise ConfigError(f"env.obs must be one of {OBS_MODES}, got {obs!r}")
        if action_repeat < 1:
            raise ConfigError(f"action_repeat must be >= 1, got {action_repeat}")
        gym = import_gymnasium()
        check_id(id)
        make_kwargs = dict(kwargs or {})
        if obs != "vector":
            make_kwargs["render_mode"] = "rgb_array"
        if max_episode_steps is not None:
            make_kwargs["max_episode_steps"] = int(max_episode_steps)
        self.env = gym.make(id, **make_kwargs)
        self.id, self.mode = id, obs
        self.size = (int(size[0]), int(size[1]))
        self.repeat = int(action_repeat)
        self._seed = seed
        self.spec = EnvSpec(self._obs_spaces(gym), *self._action_space(gym))
        if obs != "vector":  # fail here, before training, when pixels cannot be rendered
            self.env.reset(seed=seed)
            self._frame()

    def _obs_spaces(self, gym: Any) -> dict[str, ObsSpace]:
        space = self.env.observation_space
        image = ObsSpace("image", (3, *self.size))
        if self.mode == "image":
            return {SINGLE: image}
        if not isinstance(space, gym.spaces.Box):
            raise ConfigError(
                f"{self.id}: observation space {space} is not a Box; use env.obs=image to "
                "train on rendered pixels"
            )
        vector = ObsSpace("vector", (int(np.prod(space.shape)),))
        return {SINGLE: vector} if self.mode == "vector" else {"image": image, "vector": vector}

    def _action_space(self, gym: Any) -> tuple[str, int]:
        space = self.env.action_space
        if isinstance(space, gym.spaces.Discrete):
            return "discrete", int(space.n)
        if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
            self._low = space.low.astype(np.float32)
            self._high = space.high.astype(np.float32)
            if not (np.isfinite(self._low).all() and np.isfinite(self._high).all()):
                raise ConfigError(f"{self.id}: unbounded action space {space} cannot be rescaled")
            return "continuous", int(space.shape[0])
        raise ConfigError(f"{self.id}: unsupported action space {space} (Discrete or 1-D Box)")

    def _convert(self, action: np.ndarray) -> Any:
        if self.spec.action_kind == "discrete":
            return discrete_index(action)
        return rescale(action, self._low, self._high)

    def _observe(self, raw: Any) -> Obs:
        out: Obs = {}
        if self.mode != "image":
            out["vector"] = np.asarray(raw, dtype=np.float32).reshape(-1)
        if self.mode != "vector":
            out["image"] = resize_image(self._frame(), self.size)
        if self.mode == "both":
            return out
        return {SINGLE: next(iter(out.values()))}

    def reset(self, seed: int | None = None) -> Obs:
        seed = seed if seed is not None else self._seed
        self._seed = None
        raw, _ = self.env.reset(seed=seed)
        return self._observe(raw)

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool]:
        native = self._convert(self.check_action(action))
        total, terminated, truncated = 0.0, False, False
        for _ in range(self.repeat):
            raw, reward, terminated, truncated, _ = self.env.step(native)
            total += float(reward)
            if terminated or truncated:
                break
        return self._observe(raw), total, bool(terminated), bool(truncated)

    def render(self) -> np.ndarray:
        if self.mode == "vector":
            raise NotImplementedError(
                f"{self.id} was made with env.obs=vector; use env.obs=image or both to render"
            )
        return self._frame()

    def _frame(self) -> np.ndarray:
        """The rendered frame; a missing renderer (pygame, ...) is a ConfigError, not a traceback."""
        gym = import_gymnasium()
        try:
            return np.asarray(self.env.render())
        except gym.error.DependencyNotInstalled as err:
            raise ConfigError(
                f"{self.id} with env.obs={self.mode} renders pixels, which needs a renderer that "
                f"is not installed ({err}); install it or use env.obs=vector"
            ) from None

    def close(self) -> None:
        self.env.close()
