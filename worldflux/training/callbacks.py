"""Lightning callbacks of the training entry point.

- :class:`TrainMetrics`: the return and length of every finished episode (``env/episode/*``,
  against the environment step), the mean of the recent episodes with their count, environment
  steps, env steps/s, gradient steps/s and the measured train ratio, on the progress bar and in
  the loggers.
- :class:`RunResults`: rank 0's final counters and statistics in ``<run dir>/results.json``, so
  the launching process reports the true numbers even when the ranks were spawned.
- :class:`StopOnNonFinite`: stops the run when a logged loss is NaN or infinite, naming the
  update and the loss term.
- :class:`PeriodicCheckpoint`: writes ``checkpoints/last.ckpt`` every ``every_n_updates`` updates
  and/or ``every_n_seconds`` and at the end (atomically, through
  :class:`~worldflux.training.checkpoint.AtomicCheckpointIO`), keeping the last ``keep_last``
  copies as ``update-<n>.ckpt``.
- :class:`OpenLoopVideo`: ground truth | open-loop prediction | error videos for families that
  decode observations.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L

from worldflux.errors import ConfigError, WorldFluxError

LAST = "last.ckpt"


class NonFiniteLossError(WorldFluxError, FloatingPointError):
    """A training loss became NaN or infinite."""


def _datamodule(trainer: L.Trainer) -> Any:
    return getattr(trainer, "datamodule", None)


class TrainMetrics(L.Callback):
    """Log collection and throughput statistics every ``every_n_updates`` updates.

    Args:
        every_n_updates: how often the statistics are computed and logged.
    """

    def __init__(self, every_n_updates: int = 10) -> None:
        self.every = max(1, int(every_n_updates))
        self._t0: float | None = None
        self._start: tuple[int, int] = (0, 0)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = _datamodule(trainer)
        self._t0 = time.perf_counter()
        collector = getattr(dm, "collector", None)
        self._start = (getattr(dm, "updates", 0), collector.env_steps if collector else 0)

    @staticmethod
    def log_episodes(trainer: L.Trainer) -> int:
        """Hand every episode finished since the last call to the loggers; return how many.

        Each episode is one point at the environment step it ended on, so none is lost when
        several end between two logged updates (or during prefilling).
        """
        collector = getattr(_datamodule(trainer), "collector", None)
        if collector is None or not hasattr(collector, "pop_unlogged"):
            return 0
        episodes = collector.pop_unlogged()
        if trainer.is_global_zero:
            for score, length, step in episodes:
                row = {"env/episode/return": score, "env/episode/length": float(length)}
                for logger in trainer.loggers:
                    logger.log_metrics(row, step=step)
        return len(episodes)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.log_episodes(trainer)  # episodes that ended while the last batch was collected

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        dm = _datamodule(trainer)
        self.log_episodes(trainer)
        if dm is None or dm.updates % self.every:
            return
        metrics = self.compute(dm)
        pl_module.log_dict(metrics, on_step=True, on_epoch=False, batch_size=1)
        bar = {k: v for k, v in metrics.items() if k in ("env/return", "env/steps")}
        pl_module.log_dict(
            {f"{k.split('/')[-1]}": v for k, v in bar.items()},
            prog_bar=True,
            logger=False,
            on_step=True,
            on_epoch=False,
            batch_size=1,
        )

    def compute(self, dm: Any) -> dict[str, float]:
        """The current statistics of the datamodule ``dm``."""
        elapsed = max(time.perf_counter() - (self._t0 or time.perf_counter()), 1e-9)
        out = {
            "train/updates": float(dm.updates),
            "perf/grad_steps_per_s": (dm.updates - self._start[0]) / elapsed,
        }
        collector = getattr(dm, "collector", None)
        if collector is not None:
            env_steps = collector.env_steps
            out.update(collector.stats())
            out["env/steps"] = float(env_steps)
            out["env/episodes"] = float(collector.episodes)
            out["perf/env_steps_per_s"] = (env_steps - self._start[1]) / elapsed
            trained = env_steps - (dm.train_start or env_steps)
            if trained > 0:
                out["perf/train_ratio"] = dm.replayed_steps() / trained
        return out


class RunResults(L.Callback):
    """Write rank 0's final counters and statistics to ``<dirpath>/results.json``.

    With ``trainer=ddp`` spawning its ranks, the datamodule of the launching process never
    trains; the train app reads this file instead of its own (idle) counters.

    Args:
        dirpath: the run directory.
    """

    FILE = "results.json"

    def __init__(self, dirpath: str) -> None:
        self.path = Path(dirpath) / self.FILE

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        dm = _datamodule(trainer)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        collector = getattr(dm, "collector", None)
        if collector is not None:  # the final counters, not the last logged ones
            metrics.update(collector.stats(), **{"env/steps": float(collector.env_steps)})
        result = {
            "updates": int(getattr(dm, "updates", trainer.global_step)),
            "resumed_from": int(getattr(dm, "resumed_from", 0)),
            "env_steps": int(collector.env_steps) if collector is not None else None,
            "metrics": metrics,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result, indent=2))
        os.replace(tmp, self.path)


class StopOnNonFinite(L.Callback):
    """Raise :class:`NonFiniteLossError` when a ``train/loss/*`` value is NaN or infinite."""

    def __init__(self, prefix: str = "train/loss/") -> None:
        self.prefix = prefix

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        latest = getattr(pl_module, "last_train_metrics", None) or trainer.callback_metrics
        values = {k: v for k, v in latest.items() if k.startswith(self.prefix)}
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None and hasattr(loss, "detach") and loss.numel() == 1:
            values.setdefault(f"{self.prefix}total", loss.detach())
        bad = {k: float(v) for k, v in values.items() if not math.isfinite(float(v))}
        if bad:
            dm = _datamodule(trainer)
            update = getattr(dm, "updates", batch_idx + 1)
            terms = ", ".join(f"{k} = {v}" for k, v in sorted(bad.items()))
            raise NonFiniteLossError(
                f"non-finite loss at update {update} (global step {trainer.global_step}): {terms}"
            )


class PeriodicCheckpoint(L.Callback):
    """Save ``<dirpath>/last.ckpt`` periodically and when training ends; keep the last N copies.

    Like Lightning's ``ModelCheckpoint(save_last=True, every_n_train_steps=..., train_time_interval
    =..., save_top_k=N)`` with updates as the step unit. A checkpoint is written after update
    ``n`` when ``n`` is a multiple of ``every_n_updates`` or ``every_n_seconds`` passed since the
    last one; with ``keep_last`` > 0 each one is also kept as ``update-<n>.ckpt`` (a hard link
    where the file system allows) and only the newest ``keep_last`` of those stay.

    Args:
        dirpath: the checkpoint directory (the train app passes ``<run dir>/checkpoints``).
        every_n_updates: interval in updates (``None``: no update-based checkpoints).
        every_n_seconds: interval in wall-clock seconds (``None``: no time-based checkpoints).
        keep_last: number of ``update-<n>.ckpt`` copies to keep (0: only ``last.ckpt``).

    Raises:
        ConfigError: an interval that is zero, negative or not a number, or a negative
            ``keep_last``, naming the ``callbacks.checkpoint`` field.
    """

    def __init__(
        self,
        dirpath: str,
        every_n_updates: int | None = 1000,
        every_n_seconds: float | None = None,
        keep_last: int = 0,
    ) -> None:
        self.dirpath = Path(dirpath)
        self.every = _positive(every_n_updates, "every_n_updates", int)
        self.every_s = _positive(every_n_seconds, "every_n_seconds", float)
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0:
            raise ConfigError(
                f"callbacks.checkpoint.keep_last must be an integer >= 0, got {keep_last!r}"
            )
        self.keep_last = keep_last
        self._saved_at = time.monotonic()

    @property
    def last(self) -> Path:
        """The path of the latest checkpoint."""
        return self.dirpath / LAST

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._saved_at = time.monotonic()
        dm = _datamodule(trainer)
        if dm is not None and hasattr(dm, "keep_snapshots"):
            # every kept checkpoint needs its replay snapshot to be resumable
            dm.keep_snapshots = max(dm.keep_snapshots, self.keep_last + 1)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        updates = getattr(_datamodule(trainer), "updates", trainer.global_step)
        due = self.every is not None and updates % self.every == 0
        if self.every_s is not None and not due:
            elapsed = time.monotonic() - self._saved_at >= self.every_s
            due = bool(trainer.strategy.broadcast(elapsed))  # every rank saves, or none
        if due:
            self.save(trainer, updates)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        updates = getattr(_datamodule(trainer), "updates", trainer.global_step)
        self.save(trainer, updates)

    def save(self, trainer: L.Trainer, updates: int) -> None:
        """Write ``last.ckpt`` (and the kept copy of update ``updates``)."""
        trainer.save_checkpoint(self.last, weights_only=False)
        self._saved_at = time.monotonic()
        if self.keep_last <= 0 or not trainer.is_global_zero:
            return
        keep = self.dirpath / f"update-{updates:09d}.ckpt"
        tmp = keep.with_name(f".{keep.name}.tmp")
        if self.last.is_dir():  # a sharded (FSDP) checkpoint: a directory of shards
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(self.last, tmp)
            shutil.rmtree(keep, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
            try:
                os.link(self.last, tmp)
            except OSError:
                shutil.copyfile(self.last, tmp)
        os.replace(tmp, keep)
        for old in sorted(self.dirpath.glob("update-*.ckpt"))[: -self.keep_last]:
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)


def _positive(value: Any, name: str, kind: type) -> Any:
    """``None`` or a positive number of type ``kind``; anything else is a clear error."""
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok or value <= 0:
        what = "a positive integer" if kind is int else "a positive number"
        raise ConfigError(
            f"callbacks.checkpoint.{name} must be {what} or null (off), got {value!r}"
        )
    return kind(value)


class OpenLoopVideo(L.Callback):
    """Every ``every_n_updates`` updates, write an open-loop prediction video of replayed data.

    The model sees ``context`` steps, then predicts the rest of the sequence from the recorded
    actions alone. The video (ground truth | prediction | error) goes to
    ``<run dir>/videos/openloop-<update>.mp4`` (``.gif`` without the video extra) and to
    TensorBoard's videos. Families
    without ``decode`` and environments without image observations are skipped.

    Args:
        every_n_updates: interval in gradient updates.
        context: observed steps before the open-loop part.
        samples: sequences per video.
        length: total sequence length (context + predicted steps).
    """

    def __init__(
        self, every_n_updates: int = 1000, context: int = 5, samples: int = 4, length: int = 32
    ) -> None:
        self.every, self.context, self.samples, self.length = (
            every_n_updates,
            context,
            samples,
            length,
        )

    def _image_key(self, spec: Any) -> tuple[bool, str | None]:
        images = [k for k, v in spec.obs.items() if v.kind == "image"]
        if not images:
            return False, None
        return True, (None if spec.single else images[0])

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        from worldflux.training.sharded import whole_model

        dm = _datamodule(trainer)
        if dm is None or self.every <= 0 or dm.updates % self.every:
            return
        if not all(pl_module.supports(op) for op in ("observe", "rollout", "decode")):
            return
        ok, key = self._image_key(dm.replay.spec)
        if not ok or not dm.replay.can_sample(self.length):
            return
        if getattr(pl_module, "sharding", None) is not None:
            pl_module = whole_model(pl_module)  # FSDP: every rank gathers (same counters)
        if trainer.is_global_zero:
            self.write(trainer, pl_module, dm, key)

    def write(self, trainer: L.Trainer, pl_module: Any, dm: Any, key: str | None) -> Path:
        """Render and save one video; return its path (MP4 with the video extra, else GIF)."""
        import torch

        from worldflux.training.video import log_video, open_loop_frames, write_video

        sample = dm.replay.sample(self.samples, self.length)
        dev = pl_module.device

        def move(x: Any) -> Any:
            if isinstance(x, dict):
                return {k: move(v) for k, v in x.items()}
            return torch.as_tensor(x, device=dev)

        was_training = pl_module.training
        pl_module.eval()
        try:
            frames = open_loop_frames(pl_module, move(sample), self.context, key)
        finally:
            pl_module.train(was_training)
        path = write_video(
            Path(trainer.default_root_dir) / "videos" / f"openloop-{dm.updates:07d}", frames
        )
        log_video(trainer.loggers, "video/openloop", frames, dm.updates)
        return path
