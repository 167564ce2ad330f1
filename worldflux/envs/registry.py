"""Resolve an environment config (the ``env`` group) into environments.

An env config names a ``suite`` and that suite's arguments::

    suite: gym            # embedded | dummy | gym | atari | dmc | crafter | popgym
    id: CartPole-v1       # the suite's own name (gym id, Atari game, DMC task, ...)
    num_envs: 4           # environments stepped together
    obs: vector           # suite arguments follow
    action_repeat: 1

Unknown suites and ids raise :class:`~worldflux.errors.ConfigError` with close matches before any
model is built; a missing optional dependency names the ``worldflux[...]`` extra to install.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from worldflux.core.config import to_plain
from worldflux.envs.base import Env, EnvSpec
from worldflux.envs.vector import VectorEnv
from worldflux.errors import ConfigError, suggest

#: Keys of an env config that are not constructor arguments.
RESERVED = ("suite", "id", "num_envs")


#: Embedded (numpy-only) environments: id -> ``module:Class`` under ``worldflux.envs``,
#: imported when used.
EMBEDDED = {
    "catch": "embedded:Catch",
    "reach": "embedded:Reach",
    "physics": "physics:PhysicsEnv",
    "memory": "memory:Memory",
    "wall": "wall:Wall",
    "scene3d": "scene3d:Scene3D",
}


def _embedded(name: str) -> type[Env]:
    import importlib

    if name not in EMBEDDED:
        raise ConfigError(
            f"unknown embedded environment {name!r}.{suggest(name, EMBEDDED)} "
            f"Valid ids: {sorted(EMBEDDED)}"
        )
    module, cls = EMBEDDED[name].split(":")
    return getattr(importlib.import_module(f"worldflux.envs.{module}"), cls)


def _dummy(name: str) -> Callable[..., Env]:
    from worldflux.envs.embedded import Dummy

    kinds = {f"{a}_{o}": (a, o) for a in ("discrete", "continuous") for o in ("image", "vector")}
    if name not in kinds:
        raise ConfigError(
            f"unknown dummy environment {name!r}.{suggest(name, kinds)} Valid ids: {sorted(kinds)}"
        )
    action, obs = kinds[name]
    return functools.partial(Dummy, obs=obs, action=action)


def _gym(name: str) -> Callable[..., Env]:
    from worldflux.envs.gym import GymEnv, check_id

    check_id(name)
    return functools.partial(GymEnv, name)


def _atari(name: str) -> Callable[..., Env]:
    from worldflux.envs.atari import Atari

    return functools.partial(Atari, name)


def _dmc(name: str) -> Callable[..., Env]:
    from worldflux.envs.dmc import DMC

    return functools.partial(DMC, name)


def _crafter(name: str) -> Callable[..., Env]:
    from worldflux.envs.crafter import Crafter

    if name not in ("reward", "crafter"):
        raise ConfigError(f"unknown Crafter task {name!r}; valid ids: ['reward']")
    return Crafter


def _popgym(name: str) -> Callable[..., Env]:
    from worldflux.envs.popgym import PopGym, resolve

    resolve(name)  # unknown ids and a missing extra fail before any model is built
    return functools.partial(PopGym, name)


SUITES: dict[str, Callable[[str], Callable[..., Env]]] = {
    "embedded": _embedded,
    "dummy": _dummy,
    "gym": _gym,
    "atari": _atari,
    "dmc": _dmc,
    "crafter": _crafter,
    "popgym": _popgym,
}


def _plain(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return to_plain(cfg)


def env_factory(cfg: Mapping[str, Any], seed: int | None = None) -> Callable[[int], Env]:
    """A function ``index -> Env`` for the env config ``cfg`` (validated eagerly).

    Environment ``index`` gets the seed ``seed + index``.
    """
    cfg = _plain(cfg)
    suite, name = cfg.get("suite"), cfg.get("id")
    if suite not in SUITES:
        raise ConfigError(
            f"unknown environment suite {suite!r}.{suggest(str(suite), SUITES)} "
            f"Valid suites: {sorted(SUITES)}"
        )
    if not isinstance(name, str) or not name:
        raise ConfigError(f"the env config of suite {suite!r} needs an 'id' (got {name!r})")
    ctor = SUITES[suite](name)
    kwargs = {k: v for k, v in cfg.items() if k not in RESERVED}
    target = ctor.func if isinstance(ctor, functools.partial) else ctor
    params = inspect.signature(target).parameters
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        valid = [p for p in params if p not in ("self", "seed", "id", "task", "game")]
        raise ConfigError(
            f"unknown option(s) {unknown} for {suite} environments.{suggest(unknown[0], valid)} "
            f"Valid options: {valid}"
        )

    def make(index: int) -> Env:
        return ctor(**kwargs, seed=None if seed is None else seed + index)

    return make


def make_env(cfg: Mapping[str, Any], seed: int | None = None, index: int = 0) -> Env:
    """One environment from an env config."""
    return env_factory(cfg, seed)(index)


def make_vector_env(
    cfg: Mapping[str, Any], seed: int | None = None, num_envs: int | None = None
) -> VectorEnv:
    """``num_envs`` (default: ``cfg.num_envs`` or 1) environments stepped together."""
    make = env_factory(cfg, seed)
    n = int(num_envs if num_envs is not None else _plain(cfg).get("num_envs", 1))
    if n < 1:
        raise ConfigError(f"env.num_envs must be >= 1, got {n}")
    return VectorEnv([functools.partial(make, i) for i in range(n)], seed=seed)


def env_spec(cfg: Mapping[str, Any]) -> EnvSpec:
    """The spaces of the environments an env config makes (builds one and closes it)."""
    env = make_env(cfg, seed=0)
    try:
        return env.spec
    finally:
        env.close()
