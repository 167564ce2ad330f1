"""POPGym (Morad et al., ICLR 2023) through the ``popgym`` package (extra ``worldflux[popgym]``).

Partially observable memory tasks such as ``RepeatPreviousEasy`` (say the suit of the card dealt
4 steps ago; 52 cards, reward +-1/48 a step, so an episode's return lies in [-1, 1] and a random
policy gets -0.5 in expectation), the suite R2I is evaluated on. ``id`` is the POPGym class name
(``RepeatPreviousEasy``) or its gymnasium id (``popgym-RepeatPreviousEasy-v0``).

Observations become one flat float32 vector as in R2I's ``MyObsPopgym`` wrapper
(chandar-lab/Recall2Imagine @ 6e317e7, ``embodied/envs/from_gym.py``): a ``Discrete`` space
becomes a one-hot vector, ``MultiDiscrete`` and tuples of ``Discrete`` concatenated one-hots, a
``Box`` its flattened values. ``Discrete`` actions take one-hot vectors; a ``MultiDiscrete``
action space becomes one ``Discrete`` space over all combinations (the wrapper's
``unmap_action``, last component fastest); ``Box`` actions take values in ``[-1, 1]``.
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
)
from worldflux.errors import ConfigError, suggest


def popgym_classes() -> dict[str, type]:
    """POPGym environment classes by class name (needs the ``popgym`` extra)."""
    try:
        import popgym.envs as envs
    except ImportError as err:
        raise missing_extra("POPGym", "popgym", err) from None
    return {cls.__name__: cls for cls in envs.ALL}


def resolve(name: str) -> type:
    """The POPGym class for a class name or ``popgym-<Name>-v0`` id."""
    classes = popgym_classes()
    key = name.removeprefix("popgym-").removesuffix("-v0")
    if key not in classes:
        raise ConfigError(f"unknown POPGym environment {name!r}.{suggest(key, classes)}")
    return classes[key]


def _flattener(space: Any) -> tuple[Any, int]:
    """``(observation -> float32 vector, its length)`` for a POPGym observation space."""
    import gymnasium as gym

    if isinstance(space, gym.spaces.Discrete):
        n = int(space.n)
        return (lambda x: np.eye(n, dtype=np.float32)[int(x) - int(space.start)]), n
    if isinstance(space, gym.spaces.MultiDiscrete):
        sizes = [int(n) for n in np.asarray(space.nvec).reshape(-1)]
    elif isinstance(space, gym.spaces.Tuple) and all(
        isinstance(s, gym.spaces.Discrete) for s in space.spaces
    ):
        sizes = [int(s.n) for s in space.spaces]
    elif isinstance(space, gym.spaces.Box):
        size = int(np.prod(space.shape))
        return (lambda x: np.asarray(x, np.float32).reshape(-1)), size
    else:
        raise ConfigError(f"unsupported POPGym observation space {space}")
    eyes = [np.eye(n, dtype=np.float32) for n in sizes]
    flat = np.asarray  # MultiDiscrete gives arrays, Tuple gives tuples
    return (lambda x: np.concatenate([e[j] for e, j in zip(eyes, flat(x).reshape(-1))])), sum(sizes)


class PopGym(Env):
    """A POPGym environment behind the worldflux :class:`Env` interface.

    Args:
        id: class name (``RepeatPreviousEasy``) or gymnasium id of the POPGym task.
        seed: seed of the first reset.
    """

    def __init__(self, id: str, seed: int | None = None) -> None:
        import gymnasium as gym

        self.id = id
        self.env = resolve(id)()
        self._flat, size = _flattener(self.env.observation_space)
        space = self.env.action_space
        self._nvec: np.ndarray | None = None
        if isinstance(space, gym.spaces.Discrete):
            kind, dim = "discrete", int(space.n)
        elif isinstance(space, gym.spaces.MultiDiscrete):
            self._nvec = np.asarray(space.nvec).reshape(-1)
            kind, dim = "discrete", int(np.prod(self._nvec))
        elif isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
            self._low, self._high = space.low.astype(np.float32), space.high.astype(np.float32)
            kind, dim = "continuous", int(space.shape[0])
        else:
            raise ConfigError(f"{id}: unsupported POPGym action space {space}")
        self.spec = EnvSpec({SINGLE: ObsSpace("vector", (size,))}, kind, dim)
        self._seed = seed

    def _convert(self, action: np.ndarray) -> Any:
        if self.spec.action_kind == "continuous":
            return rescale(action, self._low, self._high)
        index = discrete_index(action)
        if self._nvec is None:
            return index
        out = np.zeros(len(self._nvec), np.int64)
        for i in reversed(range(len(self._nvec))):
            index, out[i] = divmod(index, int(self._nvec[i]))
        return out

    def reset(self, seed: int | None = None) -> Obs:
        seed = seed if seed is not None else self._seed
        self._seed = None
        raw, _ = self.env.reset(seed=seed)
        return {SINGLE: self._flat(raw)}

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool]:
        raw, reward, terminated, truncated, _ = self.env.step(
            self._convert(self.check_action(action))
        )
        return {SINGLE: self._flat(raw)}, float(reward), bool(terminated), bool(truncated)

    def close(self) -> None:
        self.env.close()
