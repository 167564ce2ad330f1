"""Offline datasets: a directory of episodes written by ``python -m worldflux.collect``.

Layout::

    <path>/spec.json                      # the spaces (EnvSpec.to_dict()) plus the env config
    <path>/manifest.json                  # {"env", "episodes": [{"file", "length"}], "sessions"}
    <path>/episodes/<index>-<length>.npz  # one episode: obs__<name>, action, reward, first, terminal
                                      # (+ goal__<name> for goal-reaching environments)

Each episode file holds arrays ``(T, ...)`` in the batch format of :mod:`worldflux.core.model`
(images uint8). Every file is written to a temporary name, flushed to disk and renamed, so a kill
at any point leaves either the old file or the complete new one; a torn temporary file is ignored
by readers and deleted by the next writer or reader that can take the dataset's lock. The
manifest is rewritten (atomically) after each episode; an episode renamed into place just before
a kill, which the manifest does not list yet, is still complete and is read (and adopted by the
next writer). One dataset holds one environment: :class:`DatasetWriter` refuses another.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldflux.data import storage
from worldflux.data.replay import Replay
from worldflux.envs.base import EnvSpec
from worldflux.errors import ConfigError

SPEC_FILE = "spec.json"
MANIFEST_FILE = "manifest.json"
EPISODES = "episodes"
#: Finished episode files; temporary files (``*.tmp*``) never match.
EPISODE_NAME = re.compile(r"^(\d{6,})-(\d+)\.npz$")


def _key(field: str) -> str:
    return field.replace("/", "__")


@dataclass(frozen=True)
class EpisodeEntry:
    """One episode of a dataset: its file, index (collection order) and number of steps."""

    file: Path
    index: int
    length: int


def write_spec(
    path: str | os.PathLike[str], spec: EnvSpec, extra: Mapping[str, Any] | None = None
) -> None:
    """Write ``spec.json`` atomically (spaces plus ``extra`` info such as the env config)."""
    root = Path(path)
    (root / EPISODES).mkdir(parents=True, exist_ok=True)
    text = json.dumps({**spec.to_dict(), **(extra or {})}, indent=2)
    storage.atomic_write(root / SPEC_FILE, text.encode())


def read_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The whole ``spec.json`` of a dataset (spaces plus the collect run's env config)."""
    file = Path(path) / SPEC_FILE
    if not file.is_file():
        raise ConfigError(
            f"{path} is not a worldflux dataset: {SPEC_FILE} is missing (write one with "
            "python -m worldflux.collect)"
        )
    try:
        info = json.loads(file.read_text())
        EnvSpec.from_dict(info)
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{file} is not a valid dataset spec: {err}") from None
    return dict(info)


def read_spec(path: str | os.PathLike[str]) -> EnvSpec:
    """The spaces of a dataset."""
    return EnvSpec.from_dict(read_info(path))


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``manifest.json`` of a dataset (an empty manifest when there is none yet)."""
    file = Path(path) / MANIFEST_FILE
    if not file.is_file():
        return {"episodes": [], "sessions": []}
    try:
        manifest = json.loads(file.read_text())
        entries = manifest["episodes"]
        if not all(EPISODE_NAME.match(str(e["file"])) for e in entries):
            raise ValueError("an episode file name does not match <index>-<length>.npz")
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{file} is damaged: {err}") from None
    manifest.setdefault("sessions", [])
    return dict(manifest)


def write_manifest(path: str | os.PathLike[str], manifest: Mapping[str, Any]) -> None:
    """Replace ``manifest.json`` atomically."""
    storage.atomic_write(Path(path) / MANIFEST_FILE, json.dumps(manifest, indent=1).encode())


def episodes(path: str | os.PathLike[str]) -> list[EpisodeEntry]:
    """The episodes of a dataset in collection order: the manifest's plus complete unlisted files.

    Raises:
        ConfigError: the manifest lists a file that is gone, or disagrees with its name.
    """
    folder = Path(path) / EPISODES
    found: dict[str, EpisodeEntry] = {}
    for entry in read_manifest(path)["episodes"]:
        name, length = str(entry["file"]), int(entry["length"])
        match = EPISODE_NAME.match(name)
        assert match is not None  # read_manifest checked the names
        if not (folder / name).is_file():
            raise ConfigError(
                f"dataset {path} is damaged: {MANIFEST_FILE} lists {EPISODES}/{name}, which is "
                "missing"
            )
        if int(match.group(2)) != length:
            raise ConfigError(
                f"dataset {path} is damaged: {MANIFEST_FILE} gives {name} {length} steps"
            )
        found[name] = EpisodeEntry(folder / name, int(match.group(1)), length)
    if folder.is_dir():
        for file in folder.iterdir():
            match = EPISODE_NAME.match(file.name)
            if match and file.name not in found:  # renamed into place just before a kill
                found[file.name] = EpisodeEntry(file, int(match.group(1)), int(match.group(2)))
    return sorted(found.values(), key=lambda e: (e.index, e.file.name))


def episode_files(path: str | os.PathLike[str]) -> list[Path]:
    """The episode files of a dataset, in collection order."""
    return [e.file for e in episodes(path)]


def write_episode(
    path: str | os.PathLike[str], index: int, episode: Mapping[str, np.ndarray]
) -> Path:
    """Write one episode (arrays ``(T, ...)`` keyed like :meth:`Replay.layout`) atomically.

    The file is flushed to disk before it is renamed into place, then listed in the manifest.
    """
    folder = Path(path) / EPISODES
    folder.mkdir(parents=True, exist_ok=True)
    length = len(episode["reward"])
    out = folder / f"{index:06d}-{length}.npz"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{index:06d}-", suffix=storage.TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **{_key(k): v for k, v in episode.items()})  # type: ignore[arg-type]
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, storage.file_mode())  # mkstemp creates 0600 files
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    storage.fsync_dir(folder)
    manifest = read_manifest(path)
    names = {str(e["file"]) for e in manifest["episodes"]}
    if out.name not in names:
        manifest["episodes"].append({"file": out.name, "length": length})
    manifest["steps"] = sum(int(e["length"]) for e in manifest["episodes"])
    write_manifest(path, manifest)
    return out


def check_episode(
    file: Path, arrays: Mapping[str, np.ndarray], layout: Mapping[str, Any], length: int
) -> None:
    """Raise a clear error when an episode's arrays disagree with the dataset's ``spec.json``."""
    for field, (shape, dtype) in layout.items():
        if _key(field) not in arrays:
            raise ConfigError(f"episode {file} lacks the field {field!r} that spec.json implies")
        value = arrays[_key(field)]
        if tuple(value.shape) != (length, *shape):
            raise ConfigError(
                f"episode {file}: field {field!r} has shape {tuple(value.shape)}, but spec.json "
                f"and the file name say {(length, *shape)}; the episode belongs to another "
                "environment or the dataset is damaged"
            )
        if field.startswith("obs/") and value.dtype != dtype:
            raise ConfigError(
                f"episode {file}: field {field!r} has dtype {value.dtype}, spec.json says {dtype}"
            )
        if not np.can_cast(value.dtype, dtype, casting="same_kind"):
            raise ConfigError(f"episode {file}: field {field!r} has dtype {value.dtype}")


def load_replay(path: str | os.PathLike[str], capacity: int | None = None, seed: int = 0) -> Replay:
    """Load a dataset into a single-stream :class:`Replay` (all episodes, in order).

    Temporary files left by a killed collect are ignored (and deleted when no collect is
    writing). Episodes that disagree with ``spec.json`` raise :class:`ConfigError`.

    Args:
        path: the dataset directory.
        capacity: keep at most this many steps (the latest episodes); default: all of them.
        seed: sampler seed.
    """
    spec = read_spec(path)
    with storage.DatasetLock(path, blocking=False) as lock:
        if lock.held:
            storage.remove_temp_files(Path(path))
    entries = episodes(path)
    if not entries:
        raise ConfigError(
            f"dataset {path} holds no finished episodes under {EPISODES}/ (collect more with "
            f"python -m worldflux.collect path={path})"
        )
    # Goal-reaching datasets store each step's goal observation (``goal__<name>``).
    with np.load(entries[0].file, allow_pickle=False) as f:
        goals = any(k.startswith("goal__") for k in f.files)
    replay = Replay(
        spec, capacity or sum(e.length for e in entries), num_streams=1, seed=seed, goals=goals
    )
    layout = replay.layout()
    for entry in entries:
        try:
            with np.load(entry.file, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError, EOFError) as err:
            raise ConfigError(f"episode {entry.file} cannot be read: {err}") from None
        check_episode(entry.file, arrays, layout, entry.length)
        replay.add_episode({k: arrays[_key(k)] for k in layout})
    return replay


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
            if "goal" in step:  # goal-reaching environments: the episode's goal observation
                row.update({f"goal/{k}": np.asarray(v[i]) for k, v in step["goal"].items()})
            if "state_dot" in step:  # environments that record their exact time derivative
                row["state_dot"] = np.asarray(step["state_dot"][i])
            buf.append(row)
            if step["last"][i]:
                done.append({k: np.stack([r[k] for r in buf]) for k in buf[0]})
                buf.clear()
        return done
