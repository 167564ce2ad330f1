"""Where training batches come from: online collection or an offline dataset.

:class:`OnlineDataModule` owns the environments, the replay and the collector of one rank and
serves an endless stream of sampled sequences. Before each gradient step it steps the
environments until the official train-ratio schedule is met: with ``train_ratio`` replayed steps
per environment step and batches of ``B x T`` steps, training performs ``train_ratio / (B * T)``
updates per environment step, counted from the end of prefilling (DreamerV3's ``Ratio``). The
stream ends when the environment-step budget is spent. Its counters and the replay are part of
every checkpoint, so a resumed run continues where it stopped.

:class:`OfflineDataModule` samples a dataset written by ``python -m worldflux.collect``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, IterableDataset

from worldflux.data.replay import Replay
from worldflux.envs.base import EnvSpec
from worldflux.errors import ConfigError
from worldflux.training.collector import Collector

#: Seed offset between ranks, so each rank's environments differ.
RANK_SEED_STRIDE = 10_000


def batch_shape(model: Any, batch_size: int | None, batch_length: int | None) -> tuple[int, int]:
    """The batch size and sequence length: the data config's, else the model config's."""
    cfg = getattr(model, "config", None)
    b = batch_size if batch_size is not None else getattr(cfg, "batch_size", None)
    t = batch_length if batch_length is not None else getattr(cfg, "batch_length", None)
    if b is None or t is None:
        raise ConfigError(
            f"{type(model).__name__} has no config.batch_size/config.batch_length; set "
            "data.batch_size and data.batch_length"
        )
    if int(b) < 1 or int(t) < 1:
        raise ConfigError(f"batch size and length must be >= 1, got {b} x {t}")
    return int(b), int(t)


class _Stream(IterableDataset):
    """Iterates ``source.next_batch()`` until it returns ``None``."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def __iter__(self) -> Any:
        while (batch := self.source.next_batch()) is not None:
            yield batch


class _ReplayData(L.LightningDataModule):
    """Shared parts: the batch shape, the update counter and the dataloader."""

    replay: Replay

    def __init__(self, batch_size: int, batch_length: int, checkpoint_dir: str | None) -> None:
        super().__init__()
        self.batch_size, self.batch_length = batch_size, batch_length
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.updates = 0
        self.resumed_from = 0  # updates restored from a checkpoint (0 for a fresh run)

    @property
    def rank(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.global_rank) if trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Stream(self), batch_size=None, num_workers=0)

    def replayed_steps(self) -> int:
        """Sequence steps replayed so far (updates x B x T)."""
        return self.updates * self.batch_size * self.batch_length


class OnlineDataModule(_ReplayData):
    """Environments + replay + collector of one rank (see the module docstring).

    Args:
        env: the env config (the ``env`` group).
        spec: the environment spaces.
        batch_size, batch_length: batch shape ``B x T``.
        train_ratio: replayed steps per environment step.
        prefill: environment steps with random actions before the first update.
        env_steps: environment-step budget of this rank; the run ends when it is spent.
        capacity: replay capacity in steps.
        directory: keep the replay in memory-mapped files under this directory.
        seed: seed of environments and sampling (each rank adds ``rank * 10000``).
        checkpoint_dir: where replay snapshots are written next to the checkpoints.
        use_policy: collect with ``model.act`` after prefilling (when the family has it).
    """

    def __init__(
        self,
        env: Any,
        spec: EnvSpec,
        batch_size: int,
        batch_length: int,
        train_ratio: float,
        prefill: int,
        env_steps: int,
        capacity: int,
        directory: str | None = None,
        seed: int = 0,
        checkpoint_dir: str | None = None,
        use_policy: bool = True,
    ) -> None:
        super().__init__(batch_size, batch_length, checkpoint_dir)
        if train_ratio <= 0:
            raise ConfigError(f"data.train_ratio must be > 0, got {train_ratio}")
        self.env_cfg, self.spec = env, spec
        self.train_ratio = float(train_ratio)
        self.prefill, self.env_steps = int(prefill), int(env_steps)
        self.capacity, self.directory, self.seed = int(capacity), directory, int(seed)
        self.use_policy = use_policy
        self.train_start: int | None = None
        self.collector: Collector | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.collector is not None:
            return
        from worldflux.envs.registry import make_vector_env

        seed = self.seed + RANK_SEED_STRIDE * self.rank
        envs = make_vector_env(self.env_cfg, seed=seed)
        directory = (
            None if self.directory is None else os.path.join(self.directory, f"rank{self.rank}")
        )
        self.replay = Replay(self.spec, self.capacity, envs.num_envs, directory, seed=seed)
        self.collector = Collector(envs, self.replay, seed=seed)

    def _policy(self) -> Any:
        trainer = getattr(self, "trainer", None)
        model: Any = trainer.lightning_module if trainer is not None else None
        if not self.use_policy or model is None or not model.supports("act"):
            return None
        return model

    def next_batch(self) -> dict[str, Any] | None:
        """Collect up to the train-ratio schedule, then sample one batch (``None``: budget spent)."""
        c = self.collector
        assert c is not None, "setup() was not called"
        while c.env_steps < self.prefill or not self.replay.can_sample(self.batch_length):
            if c.env_steps >= self.env_steps:
                return None
            c.step(None)
        if self.train_start is None:
            self.train_start = c.env_steps
        need = self.train_start + math.ceil(self.replayed_steps() / self.train_ratio)
        policy = self._policy()
        while c.env_steps < need:
            if c.env_steps >= self.env_steps:
                return None
            c.step(policy)
        if c.env_steps >= self.env_steps:
            return None
        self.updates += 1
        return self.replay.sample(self.batch_size, self.batch_length)

    def teardown(self, stage: str | None = None) -> None:
        if self.collector is not None:
            self.collector.envs.close()

    # ------------------------------------------------------------------ checkpoints
    def _replay_file(self, updates: int) -> Path | None:
        if self.checkpoint_dir is None:
            return None
        return self.checkpoint_dir / "replay" / f"rank{self.rank}-update{updates:09d}.npz"

    def state_dict(self) -> dict[str, Any]:
        assert self.collector is not None
        path = self._replay_file(self.updates)
        if path is not None:
            self.replay.save(path)
            keep = sorted(path.parent.glob(f"rank{self.rank}-update*.npz"))[-2:]
            for old in path.parent.glob(f"rank{self.rank}-update*.npz"):
                if old not in keep:
                    old.unlink(missing_ok=True)
        return {
            "updates": self.updates,
            "train_start": self.train_start,
            "collector": self.collector.state_dict(),
            "replay_saved": path is not None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.setup()
        assert self.collector is not None
        self.updates = self.resumed_from = int(state["updates"])
        self.train_start = state["train_start"]
        self.collector.load_state_dict(state["collector"])
        path = self._replay_file(self.updates)
        if state.get("replay_saved") and path is not None:
            if not path.is_file():
                raise ConfigError(
                    f"checkpoint refers to the replay snapshot {path}, which is missing"
                )
            self.replay.load(path)


class OfflineDataModule(_ReplayData):
    """Batches from a dataset of episodes (``python -m worldflux.collect``).

    Args:
        path: the dataset directory.
        batch_size, batch_length: batch shape ``B x T``.
        updates: number of gradient updates of the run.
        seed: sampling seed.
    """

    def __init__(
        self,
        path: str,
        batch_size: int,
        batch_length: int,
        updates: int,
        seed: int = 0,
        checkpoint_dir: str | None = None,
    ) -> None:
        super().__init__(batch_size, batch_length, checkpoint_dir)
        self.path, self.total_updates, self.seed = path, int(updates), int(seed)
        self.replay_loaded = False

    def setup(self, stage: str | None = None) -> None:
        if self.replay_loaded:
            return
        from worldflux.data.episodes import load_replay

        self.replay = load_replay(self.path, seed=self.seed + RANK_SEED_STRIDE * self.rank)
        if not self.replay.can_sample(self.batch_length):
            raise ConfigError(f"dataset {self.path} has fewer than {self.batch_length} steps")
        self.replay_loaded = True

    def next_batch(self) -> dict[str, Any] | None:
        if self.updates >= self.total_updates:
            return None
        self.updates += 1
        return self.replay.sample(self.batch_size, self.batch_length)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "rng": self.replay.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.setup()
        self.updates = self.resumed_from = int(state["updates"])
        self.replay.rng.bit_generator.state = state["rng"]
