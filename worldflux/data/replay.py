"""Episode-aware sequence replay.

Each environment writes into its own stream, so steps of different environments never
interleave and every stream is a time-ordered run of whole episodes with ``first`` marking
episode starts. A sampled sequence is a window of ``T`` consecutive steps of one stream in the
batch format of :mod:`worldflux.core.model` (it may start mid-episode and cross into the next
episode; the families reset their state at ``first``, as DreamerV3's replay does). Images are
stored as ``uint8``. Memory is bounded by ``capacity`` (steps over all streams, oldest steps
overwritten first); with ``directory`` set the arrays live in memory-mapped ``.npy`` files.

Axis legend: ``S`` streams (environments), ``L`` steps per stream, ``B`` batch, ``T`` time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from worldflux.data import storage
from worldflux.envs.base import EnvSpec
from worldflux.errors import ConfigError, ShapeError

#: Suffix of the temporary files of :meth:`Replay.save`.
REPLAY_TMP = ".replay.tmp"
#: Fields stored per step besides the observations (``obs/<name>``).
STEP_FIELDS = ("action", "reward", "first", "terminal")


class Replay:
    """A bounded, per-environment ring buffer of steps that samples sequences.

    Args:
        spec: the environment spaces (observation modalities and action size).
        capacity: total number of steps kept (split evenly over the streams).
        num_streams: number of environments writing to it.
        directory: store the arrays as memory-mapped files there instead of in memory.
        seed: seed of the sampler.
        goals: store each step's goal observation (``goal/<name>``) and sample it as
            ``batch["goal"]``; ``None``: when ``spec.extras["goal"]`` is set.
    """

    def __init__(
        self,
        spec: EnvSpec,
        capacity: int,
        num_streams: int = 1,
        directory: str | os.PathLike[str] | None = None,
        seed: int = 0,
        goals: bool | None = None,
    ) -> None:
        self.goals = bool(spec.extras.get("goal")) if goals is None else bool(goals)
        if num_streams < 1 or capacity < num_streams:
            raise ConfigError(
                f"replay capacity ({capacity}) must be at least the number of streams "
                f"({num_streams})"
            )
        self.spec = spec
        self.num_streams = num_streams
        self.length = capacity // num_streams
        self.directory = Path(directory) if directory else None
        self.rng = np.random.default_rng(seed)
        self.pos = np.zeros(num_streams, dtype=np.int64)
        self.count = np.zeros(num_streams, dtype=np.int64)
        self.total = 0
        self.data = {
            key: self._alloc(key, shape, dtype) for key, (shape, dtype) in self.layout().items()
        }

    # ------------------------------------------------------------------ storage
    def layout(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """``{field: (per-step shape, dtype)}``."""
        out = {f"obs/{k}": (tuple(v.shape), v.dtype) for k, v in self.spec.obs.items()}
        out["action"] = ((self.spec.action_dim,), np.dtype(np.float32))
        out["reward"] = ((), np.dtype(np.float32))
        out["first"] = ((), np.dtype(bool))
        out["terminal"] = ((), np.dtype(bool))
        if self.goals:
            out.update({f"goal/{k}": (tuple(v.shape), v.dtype) for k, v in self.spec.obs.items()})
        if self.spec.extras.get("state_dot"):  # exact time derivative of each observed state
            out["state_dot"] = ((int(self.spec.extras["state_dot"]),), np.dtype(np.float32))
        return out

    def _alloc(self, key: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        full = (self.num_streams, self.length, *shape)
        if self.directory is None:
            return np.zeros(full, dtype=dtype)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / (key.replace("/", "__") + ".npy")
        if path.exists():
            arr = np.load(path, mmap_mode="r+")
            if arr.shape == full and arr.dtype == dtype:
                return arr
        return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=full)

    def __len__(self) -> int:
        return int(self.count.sum())

    @property
    def capacity(self) -> int:
        """Total number of steps the buffer holds when full."""
        return self.length * self.num_streams

    # ------------------------------------------------------------------ writing
    def add(self, step: Mapping[str, Any]) -> None:
        """Append one step for every stream: ``obs {name: (S, ...)}``, ``action (S, A)``,
        ``reward (S,)``, ``first (S,)``, ``terminal (S,)`` and, with ``spec.extras["state_dot"]``,
        ``state_dot (S, D)`` (what :class:`VectorEnv` returns)."""
        rows = self.pos.copy()
        streams = np.arange(self.num_streams)
        for key in self.data:
            if key.startswith(("obs/", "goal/")):
                group, name = key.split("/", 1)
                value = step[group][name]
            else:
                value = step[key]
            value = np.asarray(value)
            expected = (self.num_streams, *self.data[key].shape[2:])
            if value.shape != expected:
                raise ShapeError(
                    f"replay field {key!r}: expected shape {expected}, got {value.shape}"
                )
            self.data[key][streams, rows] = value
        self.pos = (self.pos + 1) % self.length
        self.count = np.minimum(self.count + 1, self.length)
        self.total += self.num_streams

    def add_episode(self, episode: Mapping[str, np.ndarray], stream: int = 0) -> None:
        """Append a whole episode (arrays ``(T, ...)`` keyed like :meth:`layout`) to one stream."""
        n = len(episode["reward"])
        for t in range(n):
            for key in self.data:
                self.data[key][stream, self.pos[stream]] = episode[key][t]
            self.pos[stream] = (self.pos[stream] + 1) % self.length
            self.count[stream] = min(self.count[stream] + 1, self.length)
        self.total += n

    # ------------------------------------------------------------------ sampling
    def can_sample(self, length: int) -> bool:
        """Whether some stream holds at least ``length`` steps."""
        return bool((self.count >= length).any())

    def sample(self, batch_size: int, length: int) -> dict[str, Any]:
        """``batch_size`` windows of ``length`` consecutive steps, uniformly over valid starts.

        Returns:
            ``{"obs": {name: (B, T, ...)}, "action": (B, T, A), "reward": (B, T),
            "first": (B, T), "terminal": (B, T)}`` numpy arrays; single-modality
            observations are the array itself under ``"obs"``. With goals, ``"goal"``
            ``(B, ...)`` (or ``{name: (B, ...)}``) is the goal of each window's first step.
            Environments that record ``spec.extras["state_dot"]`` add ``"state_dot" (B, T, D)``.
        """
        starts = np.maximum(self.count - length + 1, 0)
        if starts.sum() == 0:
            raise ShapeError(
                f"cannot sample sequences of length {length}: the longest stream holds "
                f"{int(self.count.max())} steps"
            )
        stream = self.rng.choice(self.num_streams, size=batch_size, p=starts / starts.sum())
        offset = (self.rng.random(batch_size) * starts[stream]).astype(np.int64)
        oldest = (self.pos[stream] - self.count[stream]) % self.length
        index = (oldest[:, None] + offset[:, None] + np.arange(length)) % self.length
        out = {key: arr[stream[:, None], index] for key, arr in self.data.items()}
        obs = {k[4:]: out.pop(k) for k in list(out) if k.startswith("obs/")}
        out["obs"] = obs["obs"] if self.spec.single else obs
        if self.goals:  # one goal per sequence: the goal of the window's first step
            goal = {k[5:]: out.pop(k)[:, 0] for k in list(out) if k.startswith("goal/")}
            out["goal"] = goal["obs"] if self.spec.single else goal
        return out

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Counters, plus the written part of the arrays when they live in memory."""
        state: dict[str, Any] = {
            "pos": self.pos.copy(),
            "count": self.count.copy(),
            "total": self.total,
            "rng": self.rng.bit_generator.state,
        }
        if self.directory is None:
            # Until a stream wraps around, its steps occupy rows [0, count): save only those.
            used = int(self.count.max())
            state["data"] = {k: v[:, :used] for k, v in self.data.items()}
        else:
            for arr in self.data.values():
                arr.flush()  # type: ignore[attr-defined]  # np.memmap on disk
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.pos = np.asarray(state["pos"], dtype=np.int64).copy()
        self.count = np.asarray(state["count"], dtype=np.int64).copy()
        self.total = int(state["total"])
        self.rng.bit_generator.state = state["rng"]
        if "data" in state:
            for key, arr in state["data"].items():
                mine = self.data.get(key)
                if (
                    mine is None
                    or mine.shape[0] != arr.shape[0]
                    or mine.shape[2:] != arr.shape[2:]
                    or arr.shape[1] > mine.shape[1]
                ):
                    raise ShapeError(
                        f"saved replay field {key!r} {arr.shape} does not fit this "
                        f"buffer {None if mine is None else mine.shape}"
                    )
                mine[:, : arr.shape[1]] = arr

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`state_dict` to ``path`` (``.npz``) atomically."""
        import json

        state = self.state_dict()
        arrays = {f"data/{k}": v for k, v in state.pop("data", {}).items()}
        arrays.update(pos=state["pos"], count=state["count"])
        meta = json.dumps({"total": state["total"], "rng": state["rng"]})
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Leftovers of killed saves (any rank's): live saves hold their file locked.
        storage.remove_orphans(path.parent, f".*{REPLAY_TMP}")
        with storage.locked_temp_file(path.parent, f".{path.name}-", REPLAY_TMP) as (fh, tmp):
            np.savez(fh, meta=np.array(meta), **arrays)
            fh.flush()
            os.fsync(fh.fileno())
            os.chmod(tmp, storage.file_mode())  # mkstemp creates 0600 files; respect the umask
            os.replace(tmp, path)  # while still locked, so no cleaner can take it first
        storage.fsync_dir(path.parent)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore a buffer written by :meth:`save`."""
        import json

        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            state = {
                "pos": f["pos"],
                "count": f["count"],
                "total": meta["total"],
                "rng": meta["rng"],
            }
            data = {k[5:]: f[k] for k in f.files if k.startswith("data/")}
            if data:
                state["data"] = data
            self.load_state_dict(state)
