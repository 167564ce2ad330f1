"""Where training batches come from: online collection or an offline dataset.

:class:`OnlineDataModule` owns the environments, the replay and the collector of one rank and
serves an endless stream of sampled sequences. Before each gradient step it steps the
environments until the official train-ratio schedule is met: with ``train_ratio`` replayed steps
per environment step and batches of ``B x T`` steps, training performs ``train_ratio / (B * T)``
updates per environment step, counted from the end of prefilling (DreamerV3's ``Ratio``). The
stream ends when the environment-step budget is spent. Its counters and the replay are part of
every checkpoint, so a resumed run continues where it stopped.

Exact resume: Lightning fetches the next item of the stream before the current update runs, so
the stream yields only a :class:`Ticket` (after collecting the environment steps that update
needs); the batch itself is sampled, and ``updates`` counted, in ``on_before_batch_transfer``,
when the update really starts. A checkpoint written after update ``n`` therefore holds ``n``
updates and the sampling state of ``n`` updates; the environment steps collected ahead for update
``n + 1`` are in the replay and the counters, and re-issuing that ticket after a resume collects
nothing more. Runs killed any number of times end with the counts of an uninterrupted run.

Phases (:mod:`worldflux.core.phases`): for a family that declares phases, each update is served as
``{phase: batch}`` for the phases due at that update, each sampled at its own shape (``burn_in``
extra steps in front, announced by the batch's ``burn_in`` entry); a phase declared with ``batch:
<other>`` maps to the other phase's batch. The train ratio counts updates at the default shape.

:class:`OfflineDataModule` samples a dataset written by ``python -m worldflux.collect``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, IterableDataset, default_convert

from worldflux.core.phases import Schedule
from worldflux.data.replay import Replay
from worldflux.envs.base import EnvSpec
from worldflux.errors import ConfigError
from worldflux.training.collector import Collector
from worldflux.training.sharded import full_parameters

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


@dataclass(frozen=True)
class Ticket:
    """A promise of one update's batch: the environment steps it was issued at."""

    env_steps: int


class _Stream(IterableDataset):
    """Iterates ``source.next_ticket()`` until it returns ``None``."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def __iter__(self) -> Any:
        while (ticket := self.source.next_ticket()) is not None:
            yield ticket


class _ReplayData(L.LightningDataModule):
    """Shared parts: the batch shapes, the update counters and the dataloader.

    ``updates`` counts the updates whose batch was drawn (the update that is running included),
    ``issued`` the tickets handed to Lightning (one ahead while a run is going).
    """

    replay: Replay

    def __init__(
        self,
        batch_size: int,
        batch_length: int,
        checkpoint_dir: str | None,
        schedule: Schedule | None = None,
        max_updates: int | None = None,
    ) -> None:
        super().__init__()
        self.batch_size, self.batch_length = batch_size, batch_length
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.schedule = schedule
        self.max_updates = max_updates
        self.updates = 0
        self.issued = 0
        self.resumed_from = 0  # updates restored from a checkpoint (0 for a fresh run)

    @property
    def rank(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.global_rank) if trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        self.issued = self.updates  # tickets issued but never drawn died with the last run
        return DataLoader(_Stream(self), batch_size=None, num_workers=0)

    def replayed_steps(self, updates: int | None = None) -> int:
        """Sequence steps replayed by ``updates`` (default: so far), at the default shape."""
        n = self.updates if updates is None else updates
        return n * self.batch_size * self.batch_length

    def _schedule(self) -> Schedule:
        """The phases of the model being trained (none for families without phases)."""
        if self.schedule is not None:
            return self.schedule
        trainer = getattr(self, "trainer", None)
        model = trainer.lightning_module if trainer is not None else None
        if model is None:
            return Schedule(())
        self.schedule = getattr(model, "schedule", None) or Schedule(())
        return self.schedule

    def longest_sequence(self) -> int:
        """The longest sequence any phase samples (the replay must hold one first)."""
        shapes = self._schedule().batch_shapes((self.batch_size, self.batch_length))
        return max([self.batch_length, *(t for _, t in shapes.values())])

    def _limit_reached(self) -> bool:
        return self.max_updates is not None and self.issued >= self.max_updates

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Turn a :class:`Ticket` into the update's batch (see the module docstring)."""
        return self.draw(batch) if isinstance(batch, Ticket) else batch

    def draw(self, ticket: Ticket) -> dict[str, Any]:
        """Sample the batch of the next update and count the update."""
        schedule = self._schedule()
        if not schedule:
            batch = self.replay.sample(self.batch_size, self.batch_length)
            self.updates += 1
            return default_convert(batch)
        shapes = schedule.batch_shapes((self.batch_size, self.batch_length))
        out: dict[str, Any] = {}
        for phase in schedule.due(self.updates, ticket.env_steps):
            if phase.batch is not None:
                out[phase.name] = out[phase.batch]
                continue
            b, t = shapes[phase.name]
            batch = default_convert(self.replay.sample(b, t))
            if phase.burn_in:
                batch["burn_in"] = phase.burn_in
            out[phase.name] = batch
        self.updates += 1
        return out


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
        schedule: Schedule | None = None,
        max_updates: int | None = None,
    ) -> None:
        super().__init__(batch_size, batch_length, checkpoint_dir, schedule, max_updates)
        if train_ratio <= 0:
            raise ConfigError(f"data.train_ratio must be > 0, got {train_ratio}")
        self.env_cfg, self.spec = env, spec
        self.train_ratio = float(train_ratio)
        self.prefill, self.env_steps = int(prefill), int(env_steps)
        self.capacity, self.directory, self.seed = int(capacity), directory, int(seed)
        self.use_policy = use_policy
        self.train_start: int | None = None
        self.collector: Collector | None = None
        self.keep_snapshots = 2  # replay snapshots kept (PeriodicCheckpoint raises it)

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

    def next_ticket(self) -> Ticket | None:
        """Collect up to the train-ratio schedule of the next update (``None``: budget spent)."""
        # Under FSDP the policy needs its parameters gathered, a collective: every rank gathers
        # exactly once per ticket, since the ranks' prefill can end at different steps.
        with full_parameters(self._policy()):
            return self._next_ticket()

    def _next_ticket(self) -> Ticket | None:
        c = self.collector
        assert c is not None, "setup() was not called"
        if self._limit_reached():
            return None
        length = self.longest_sequence()
        while c.env_steps < self.prefill or not self.replay.can_sample(length):
            if c.env_steps >= self.env_steps:
                return None
            c.step(None)
        if self.train_start is None:
            self.train_start = c.env_steps
        need = self.train_start + math.ceil(self.replayed_steps(self.issued) / self.train_ratio)
        policy = self._policy()
        while c.env_steps < need:
            if c.env_steps >= self.env_steps:
                return None
            c.step(policy)
        if c.env_steps >= self.env_steps:
            return None
        self.issued += 1
        return Ticket(c.env_steps)

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
            keep = sorted(path.parent.glob(f"rank{self.rank}-update*.npz"))[-self.keep_snapshots :]
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
        self.updates = self.issued = self.resumed_from = int(state["updates"])
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
        schedule: Schedule | None = None,
    ) -> None:
        super().__init__(batch_size, batch_length, checkpoint_dir, schedule, int(updates))
        self.path, self.total_updates, self.seed = path, int(updates), int(seed)
        self.replay_loaded = False

    def setup(self, stage: str | None = None) -> None:
        if self.replay_loaded:
            return
        from worldflux.data.episodes import load_replay

        self.replay = load_replay(self.path, seed=self.seed + RANK_SEED_STRIDE * self.rank)
        length = self.longest_sequence()
        if not self.replay.can_sample(length):
            raise ConfigError(f"dataset {self.path} has no episode of {length} steps")
        self.replay_loaded = True

    def next_ticket(self) -> Ticket | None:
        """A ticket per update until ``updates`` were issued."""
        if self._limit_reached():
            return None
        self.issued += 1
        return Ticket(0)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "rng": self.replay.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.setup()
        self.updates = self.issued = self.resumed_from = int(state["updates"])
        self.replay.rng.bit_generator.state = state["rng"]
