"""Open a dataset for writing: one environment per directory, appending, crash-safe.

:class:`DatasetWriter` is what ``python -m worldflux.collect`` writes through. It takes the
dataset's lock, refuses a directory that holds another environment's episodes, deletes the
temporary files of a killed run, adopts episodes that were renamed into place but not yet listed
in the manifest, and appends new episodes after the existing ones.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from worldflux.data import storage
from worldflux.data.episodes import (
    SPEC_FILE,
    episodes,
    read_info,
    read_manifest,
    write_episode,
    write_manifest,
    write_spec,
)
from worldflux.envs.base import EnvSpec
from worldflux.errors import ConfigError

#: Env config keys that do not change what an episode looks like or means.
RUNTIME_KEYS = ("num_envs",)


def env_identity(env: Mapping[str, Any]) -> dict[str, Any]:
    """The env config keys that define a dataset's environment (all but :data:`RUNTIME_KEYS`)."""
    return {k: v for k, v in env.items() if k not in RUNTIME_KEYS}


def env_name(env: Mapping[str, Any]) -> str:
    """``suite:id`` of an env config."""
    return f"{env.get('suite', '?')}:{env.get('id', '?')}"


def _describe_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, str]:
    # The observation and action kinds first: they are what usually tells two datasets apart.
    keys = sorted(
        (k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in ("suite", "id")),
        key=lambda k: (k not in ("obs", "action"), k),
    )[:5]

    def fmt(env: Mapping[str, Any]) -> str:
        knobs = ", ".join(f"{k}={env.get(k)!r}" for k in keys)
        return env_name(env) + (f" ({knobs})" if knobs else "")

    return fmt(old), fmt(new)


class DatasetWriter:
    """Append episodes of one environment to a dataset directory (a context manager).

    Args:
        path: the dataset directory (created when missing).
        spec: the spaces of the environment being collected.
        env: the env config (stored in ``spec.json``; compared with an existing dataset's).
        session: provenance of this run (``policy``, ``seed``, ...) recorded in the manifest.
        lock_timeout: seconds to wait for another writer of the same directory to finish.

    Raises:
        ConfigError: the directory holds another environment's dataset, or another collect is
            writing it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        spec: EnvSpec,
        env: Mapping[str, Any],
        session: Mapping[str, Any] | None = None,
        lock_timeout: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self.spec, self.env = spec, dict(env)
        self.session = dict(session or {})
        self.lock = storage.DatasetLock(self.path, blocking=True, timeout=lock_timeout)
        self.existing = 0
        self.written = 0
        self.next_index = 0

    def __enter__(self) -> DatasetWriter:
        self.lock.__enter__()
        try:
            self._open()
        except BaseException:
            self.lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.lock.__exit__(exc_type, exc, tb)

    def _open(self) -> None:
        storage.remove_temp_files(self.path)
        if (self.path / SPEC_FILE).is_file():
            self._check_same_environment(read_info(self.path))
        else:
            if self.path.is_dir() and any(self.path.glob("episodes/*.npz")):
                raise ConfigError(
                    f"{self.path} holds episode files but no {SPEC_FILE}; it is not a dataset "
                    "this collect can add to; choose another path="
                )
            write_spec(self.path, self.spec, {"env": self.env})
        entries = episodes(self.path)
        manifest = read_manifest(self.path)
        # Adopt complete episodes a kill left unlisted, so the manifest is whole again.
        manifest["episodes"] = [{"file": e.file.name, "length": e.length} for e in entries]
        manifest["steps"] = sum(e.length for e in entries)
        manifest["env"] = env_name(self.env)
        manifest["sessions"].append({**self.session, "first_index": len(entries)})
        write_manifest(self.path, manifest)
        self.existing = len(entries)
        self.next_index = entries[-1].index + 1 if entries else 0

    def _check_same_environment(self, info: Mapping[str, Any]) -> None:
        old_spec = EnvSpec.from_dict(info)
        old_env = info.get("env")
        same_env = old_env is None or env_identity(old_env) == env_identity(self.env)
        same_spaces = old_spec.to_dict() == self.spec.to_dict()
        if same_spaces and same_env:
            return
        old, new = _describe_difference(old_env or {}, self.env)
        if not same_spaces:
            old += f" [{old_spec.describe()}]"
            new += f" [{self.spec.describe()}]"
        raise ConfigError(
            f"{self.path} holds a dataset of {old}; refusing to add episodes of {new} to it "
            "(one dataset holds one environment): choose another path= or delete that dataset"
        )

    def add(self, episode: Mapping[str, np.ndarray]) -> Path:
        """Write one finished episode (arrays ``(T, ...)``) and list it in the manifest."""
        out = write_episode(self.path, self.next_index, episode)
        self.next_index += 1
        self.written += 1
        return out
