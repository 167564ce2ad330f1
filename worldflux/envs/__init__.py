"""Environments for training and evaluation.

- :mod:`worldflux.envs.base`: the :class:`Env` interface and :class:`EnvSpec` spaces.
- :mod:`worldflux.envs.embedded`: ``Catch`` (the default, numpy only) and ``Dummy`` test envs.
- :mod:`worldflux.envs.gym`, :mod:`~worldflux.envs.atari`, :mod:`~worldflux.envs.dmc`,
  :mod:`~worldflux.envs.crafter`: suites behind optional extras.
- :mod:`worldflux.envs.vector`: several environments stepped together.
- :mod:`worldflux.envs.registry`: ``make_env`` / ``make_vector_env`` from an env config.
"""

from __future__ import annotations

from worldflux.envs.base import Env, EnvSpec, ObsSpace
from worldflux.envs.registry import env_spec, make_env, make_vector_env
from worldflux.envs.vector import VectorEnv

__all__ = ["Env", "EnvSpec", "ObsSpace", "VectorEnv", "env_spec", "make_env", "make_vector_env"]
