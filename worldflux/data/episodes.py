"""Offline datasets: a directory of episodes written by ``python -m worldflux.collect``.

Layout::

    <path>/spec.json                      # the environment spaces (EnvSpec.to_dict())
    <path>/episodes/<index>-<length>.npz  # one episode: obs__<name>, action, reward, first, terminal

Each episode file holds arrays ``(T, ...)`` in the batch format of :mod:`worldflux.core.model`
(images uint8) and is written atomically, so a dataset interrupted mid-collection stays readable.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from worldflux.data.replay import Replay
from worldflux.envs.base import EnvSpec
from worldflux.errors import ConfigError

SPEC_FILE = "spec.json"
EPISODES = "episodes"


def _key(field: str) -> str:
    return field.replace("/", "__")


def write_spec(
    path: str | os.PathLike[str], spec: EnvSpec, extra: Mapping[str, Any] | None = None
) -> None:
    """Write ``spec.json`` (spaces plus ``extra`` info such as the env config)."""
    root = Path(path)
    (root / EPISODES).mkdir(parents=True, exist_ok=True)
    (root / SPEC_FILE).write_text(json.dumps({**spec.to_dict(), **(extra or {})}, indent=2))


def write_episode(
    path: str | os.PathLike[str], index: int, episode: Mapping[str, np.ndarray]
) -> Path:
    """Write one episode (arrays ``(T, ...)`` keyed like :meth:`Replay.layout`) atomically."""
    folder = Path(path) / EPISODES
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{index:06d}-{len(episode['reward'])}.npz"
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp.npz")
    with os.fdopen(fd, "wb") as fh:
        np.savez_compressed(fh, **{_key(k): v for k, v in episode.items()})  # type: ignore[arg-type]
    os.chmod(tmp, 0o644)  # mkstemp creates 0600 files
    os.replace(tmp, out)
    return out


class EpisodeRecorder:
    """Split the step stream of a :class:`VectorEnv` into episodes and hand back finished ones."""

    def __init__(self, spec: EnvSpec, num_envs: int) -> None:
        self.spec = spec
        self.buffers: list[list[dict[str, Any]]] = [[] for _ in range(num_envs)]

    def add(self, step: Mapping[str, Any]) -> list[dict[str, np.ndarray]]:
        """Record one vector step; return the episodes it completed."""
        done = []
        for i, buf in enumerate(self.buffers):
            if step["first"][i]:
                buf.clear()
            row = {f"obs/{k}": np.asarray(v[i]) for k, v in step["obs"].items()}
            row.update(
                {k: np.asarray(step[k][i]) for k in ("action", "reward", "first", "terminal")}
            )
            buf.append(row)
            if step["last"][i]:
                done.append({k: np.stack([r[k] for r in buf]) for k in buf[0]})
                buf.clear()
        return done


def read_spec(path: str | os.PathLike[str]) -> EnvSpec:
    """The spaces of a dataset."""
    file = Path(path) / SPEC_FILE
    if not file.is_file():
        raise ConfigError(
            f"{path} is not a worldflux dataset: {SPEC_FILE} is missing (write one with "
            "python -m worldflux.collect)"
        )
    return EnvSpec.from_dict(json.loads(file.read_text()))


def episode_files(path: str | os.PathLike[str]) -> list[Path]:
    """The episode files of a dataset, in collection order."""
    return sorted((Path(path) / EPISODES).glob("*.npz"))


def load_replay(path: str | os.PathLike[str], capacity: int | None = None, seed: int = 0) -> Replay:
    """Load a dataset into a single-stream :class:`Replay` (all episodes, in order).

    Args:
        path: the dataset directory.
        capacity: keep at most this many steps (the latest episodes); default: all of them.
        seed: sampler seed.
    """
    spec = read_spec(path)
    files = episode_files(path)
    if not files:
        raise ConfigError(f"dataset {path} holds no episodes under {EPISODES}/")
    lengths = [int(f.stem.split("-")[1]) for f in files]
    replay = Replay(spec, capacity or sum(lengths), num_streams=1, seed=seed)
    layout = replay.layout()
    for file in files:
        with np.load(file, allow_pickle=False) as f:
            missing = [k for k in layout if _key(k) not in f.files]
            if missing:
                raise ConfigError(f"episode {file} lacks fields {missing}")
            replay.add_episode({k: f[_key(k)] for k in layout})
    return replay
