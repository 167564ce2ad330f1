"""The data every model of a comparison sees: episodes from an environment or an offline dataset.

A comparison runs on one list of episodes, split into training episodes (what the ``train``
budget fits presets on) and held-out episodes (open-loop fidelity). Episodes come either from an
environment, played with uniformly random actions from a seeded generator, or from a dataset
directory written by ``python -m worldflux.collect`` (its last ``eval_episodes`` episodes are held
out). :func:`dataset_hash` fingerprints the episodes, so a table can be reproduced and two tables
can be checked to be on the same data.

Each episode is a dict of arrays ``(T, ...)`` keyed like :meth:`worldflux.data.replay.Replay.layout`
(``obs/<name>``, ``action``, ``reward``, ``first``, ``terminal``, optionally ``goal/<name>``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldflux.data.replay import Replay
from worldflux.envs.base import SINGLE, EnvSpec
from worldflux.errors import ConfigError

Episode = dict[str, np.ndarray]


@dataclass
class CompareData:
    """The episodes of one comparison.

    Attributes:
        spec: the spaces of the data.
        env: the env config (``None`` for a dataset without one; closed loop then needs ``env``).
        train: training episodes.
        held_out: held-out episodes (open-loop evaluation).
        source: where the episodes come from (for the report header).
        digest: :func:`dataset_hash` of all episodes.
    """

    spec: EnvSpec
    env: dict[str, Any] | None
    train: list[Episode]
    held_out: list[Episode]
    source: str
    digest: str

    @property
    def goal(self) -> bool:
        """Whether the data comes from a goal-reaching environment."""
        return bool(self.spec.extras.get("goal"))

    def replay(self, seed: int) -> Replay:
        """A single-stream :class:`Replay` of the training episodes (training batches)."""
        goals = any(k.startswith("goal/") for k in self.train[0])
        size = sum(len(ep["reward"]) for ep in self.train)
        replay = Replay(self.spec, size, num_streams=1, seed=seed, goals=goals)
        for ep in self.train:
            replay.add_episode({k: ep[k] for k in replay.layout()})
        return replay

    def mean_frame(self) -> dict[str, np.ndarray]:
        """The mean observation of the training episodes per modality (the mean-frame baseline)."""
        keys = [k for k in self.train[0] if k.startswith("obs/")]
        return {
            k[4:]: np.concatenate([ep[k] for ep in self.train]).astype(np.float64).mean(0)
            for k in keys
        }


def dataset_hash(episodes: Sequence[Mapping[str, np.ndarray]]) -> str:
    """SHA-256 (first 16 hex digits) over every episode's arrays: keys, dtypes, shapes, bytes."""
    digest = hashlib.sha256()
    for ep in episodes:
        for key in sorted(ep):
            arr = np.ascontiguousarray(ep[key])
            digest.update(f"{key}|{arr.dtype.str}|{arr.shape}|".encode())
            digest.update(arr.tobytes())
    return digest.hexdigest()[:16]


def collect_episodes(
    env: Mapping[str, Any], episodes: int, seed: int
) -> tuple[EnvSpec, list[Episode]]:
    """Play ``episodes`` episodes of ``env`` with seeded uniformly random actions."""
    from worldflux.data.episodes import EpisodeRecorder
    from worldflux.envs.registry import make_vector_env
    from worldflux.training.collector import random_actions

    envs = make_vector_env({**dict(env), "num_envs": 1}, seed=seed)
    recorder = EpisodeRecorder(envs.spec, 1)
    rng = np.random.default_rng(seed)
    out: list[Episode] = []
    step = None
    try:
        while len(out) < episodes:
            action = None if step is None else random_actions(envs.spec, 1, rng)
            step = envs.step(action)
            out.extend(recorder.add(step))
    finally:
        envs.close()
    return envs.spec, out


def read_dataset(path: str | Path) -> tuple[EnvSpec, list[Episode], dict[str, Any] | None]:
    """The spaces, episodes (collection order) and env config of a dataset directory."""
    from worldflux.data.episodes import episodes, read_info, read_spec

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"data.dataset={path}: no such dataset directory")
    spec = read_spec(folder)
    env = read_info(folder).get("env")
    out: list[Episode] = []
    for entry in episodes(folder):
        with np.load(entry.file, allow_pickle=False) as f:
            out.append({k.replace("__", "/"): f[k] for k in f.files})
    return spec, out, dict(env) if isinstance(env, Mapping) else None


def load_data(
    env: Mapping[str, Any] | None,
    dataset: str | None,
    train_episodes: int,
    eval_episodes: int,
    seed: int,
) -> CompareData:
    """The episodes of a comparison, from ``dataset`` when given, else played in ``env``.

    Raises:
        ConfigError: neither source, an empty dataset, or too few episodes for the split.
    """
    if eval_episodes < 1:
        raise ConfigError(f"data.eval_episodes must be >= 1, got {eval_episodes}")
    if dataset:
        spec, episodes, stored_env = read_dataset(dataset)
        source = f"dataset {dataset}"
        env = dict(env) if env else stored_env
        if len(episodes) == 0:
            raise ConfigError(
                f"data.dataset={dataset} is empty: it holds no finished episodes (collect some "
                f"with python -m worldflux.collect path={dataset})"
            )
        if len(episodes) <= eval_episodes:
            raise ConfigError(
                f"data.dataset={dataset} holds {len(episodes)} episodes; the comparison holds out "
                f"data.eval_episodes={eval_episodes} and needs at least one more to train on"
            )
        train, held = episodes[:-eval_episodes], episodes[-eval_episodes:]
    elif env:
        if train_episodes < 1:
            raise ConfigError(f"data.train_episodes must be >= 1, got {train_episodes}")
        spec, episodes = collect_episodes(env, train_episodes + eval_episodes, seed)
        train, held = episodes[:train_episodes], episodes[train_episodes:]
        source = f"env {env.get('suite')}:{env.get('id')}, random actions, seed {seed}"
        env = dict(env)
    else:
        raise ConfigError("compare needs data: env=<environment> or data.dataset=<dataset dir>")
    return CompareData(spec, env, train, held, source, dataset_hash([*train, *held]))


def obs_key(spec: EnvSpec) -> str:
    """The modality the fidelity metrics score: the single one, else the first image modality."""
    if spec.single:
        return SINGLE
    images = [k for k, v in spec.obs.items() if v.kind == "image"]
    return images[0] if images else next(iter(spec.obs))


def check_spaces(name: str, model: Any, spec: EnvSpec) -> None:
    """Refuse a model whose observation or action spaces differ from the data's.

    Raises:
        ConfigError: naming the model, what it expects and what the data has.
    """
    config = model.config
    mods = {k: tuple(int(s) for s in v["shape"]) for k, v in config.modalities().items()}
    data = {k: tuple(int(s) for s in v.shape) for k, v in spec.obs.items()}
    if mods != data:
        raise ConfigError(
            f"model {name!r} expects observations {mods} but the data has {data} "
            f"({spec.describe()}); compare models built for the same spaces, or give a preset id "
            "so the comparison builds it for the data"
        )
    kind, dim = getattr(config, "action_kind", None), int(getattr(config, "action_dim", -1))
    if (kind, dim) != (spec.action_kind, spec.action_dim):
        raise ConfigError(
            f"model {name!r} expects {kind} actions of size {dim} but the data has "
            f"{spec.action_kind} actions of size {spec.action_dim}"
        )
