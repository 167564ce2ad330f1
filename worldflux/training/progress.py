"""Progress reporting: a bar with the planned updates, env steps and ETA, or plain summary lines.

Online runs end when their environment-step budget is spent, so the number of updates is known
in advance from the train-ratio schedule (:func:`planned_updates`). With the bar on
(``trainer.enable_progress_bar=true``) :class:`UpdateProgressBar` replaces Lightning's, which
shows no total for a stream of batches; with it off (batch jobs, logs) :class:`PlainProgress`
prints one line every ``every_s`` seconds and a last one at the end.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar


def planned_updates(dm: Any) -> int | None:
    """The number of updates the run will make (``None`` when it cannot be known)."""
    if dm is None:
        return None
    if hasattr(dm, "total_updates"):  # offline: a fixed number of updates
        return int(dm.total_updates)
    needed = ("env_steps", "prefill", "train_ratio", "batch_size", "batch_length")
    if not all(hasattr(dm, k) for k in needed):
        return None
    collector = getattr(dm, "collector", None)
    envs = collector.envs.num_envs if collector is not None else 1
    if collector is None and isinstance(getattr(dm, "env_cfg", None), dict):
        envs = int(dm.env_cfg.get("num_envs", 1))
    start = dm.train_start
    if start is None:  # prefilling ends on the first whole vector step past data.prefill
        start = -(-int(dm.prefill) // envs) * envs
    per_update = dm.batch_size * dm.batch_length / dm.train_ratio  # env steps per update
    # Update u + 1 is made once start + ceil(u * per_update) env steps are collected (whole
    # vector steps of `envs`), and only while that stays below the budget.
    last = (int(dm.env_steps) - 1) // envs * envs - start
    return max(0, math.floor(last / per_update + 1e-9) + 1)


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def summary(trainer: L.Trainer, rate: float | None = None, eta: float | None = None) -> str:
    """One line: updates (of the plan), env steps (of the budget), returns, speed and ETA."""
    dm = getattr(trainer, "datamodule", None)
    updates = int(getattr(dm, "updates", trainer.global_step))
    total = planned_updates(dm)
    parts = [f"update {updates}" + (f"/{total}" if total else "")]
    if total:
        parts[0] += f" ({100 * min(updates, total) // total}%)"
    collector = getattr(dm, "collector", None)
    if collector is not None:
        parts.append(f"env steps {collector.env_steps}/{dm.env_steps}")
        stats = collector.stats()
        if stats:
            parts.append(
                f"return {stats['env/return']:.2f} (last {int(stats['env/return_count'])} ep)"
            )
    metrics = trainer.callback_metrics
    if "eval/return" in metrics:
        parts.append(f"eval {float(metrics['eval/return']):.2f}")
    if rate is not None:
        parts.append(f"{rate:.1f} updates/s")
    if eta is not None:
        parts.append(f"ETA {_clock(eta)}")
    return " | ".join(parts)


class _Rate:
    """Updates per second in this session (a resumed run's restored updates excluded)."""

    def __init__(self) -> None:
        self.t0: float | None = None
        self.u0 = 0

    def start(self, trainer: L.Trainer) -> None:
        self.t0 = time.perf_counter()
        self.u0 = int(getattr(trainer.datamodule, "updates", 0))

    def measure(self, trainer: L.Trainer) -> tuple[float | None, float | None]:
        """``(updates/s, seconds left)``; ``None`` before the first update of the session."""
        dm = trainer.datamodule
        done = int(getattr(dm, "updates", 0)) - self.u0
        if self.t0 is None or done <= 0:
            return None, None
        rate = done / max(time.perf_counter() - self.t0, 1e-9)
        total = planned_updates(dm)
        left = None if total is None else max(0, total - int(dm.updates)) / rate
        return rate, left


class UpdateProgressBar(TQDMProgressBar):
    """Lightning's bar, counting updates against the planned total, with env steps and ETA."""

    def __init__(self, refresh_rate: int = 1) -> None:
        super().__init__(refresh_rate=refresh_rate)
        self._rate = _Rate()

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self._rate.start(trainer)
        self.train_progress_bar.set_description("updates")
        self._sync(trainer)

    def _sync(self, trainer: L.Trainer) -> None:
        dm = trainer.datamodule
        bar = self.train_progress_bar
        total = planned_updates(dm)
        if total:
            bar.total = max(total, int(getattr(dm, "updates", 0)))
        bar.n = int(getattr(dm, "updates", trainer.global_step))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.train_progress_bar is None or (batch_idx + 1) % max(self.refresh_rate, 1):
            return
        self._sync(trainer)
        postfix = self.get_metrics(trainer, pl_module)
        postfix.pop("v_num", None)
        collector = getattr(trainer.datamodule, "collector", None)
        if collector is not None:
            postfix.pop("steps", None)  # TrainMetrics' count, shown here against the budget
            postfix["env_steps"] = f"{collector.env_steps}/{trainer.datamodule.env_steps}"
        self.train_progress_bar.set_postfix(postfix, refresh=False)
        self.train_progress_bar.refresh()


class PlainProgress(L.Callback):
    """Print :func:`summary` every ``every_s`` seconds and when training ends (rank 0 only).

    Args:
        every_s: seconds between lines.
    """

    def __init__(self, every_s: float = 30.0) -> None:
        self.every_s = float(every_s)
        self._rate = _Rate()
        self._next = 0.0
        self._reported: int | None = None  # the update of the last line, printed once only

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._rate.start(trainer)
        self._next = time.perf_counter() + self.every_s

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if time.perf_counter() >= self._next:
            self._next = time.perf_counter() + self.every_s
            self.report(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self._reported != int(getattr(trainer.datamodule, "updates", -1)):
            self.report(trainer)

    def report(self, trainer: L.Trainer) -> None:
        """Print one summary line (rank 0 only)."""
        self._reported = int(getattr(trainer.datamodule, "updates", -1))
        if trainer.is_global_zero:
            rate, eta = self._rate.measure(trainer)
            print(summary(trainer, rate, eta), file=sys.stdout, flush=True)


def progress(bar: bool = True, every_s: float = 30.0, refresh_rate: int = 1) -> L.Callback:
    """The ``callbacks.progress`` entry: the bar when ``bar`` (``trainer.enable_progress_bar``),
    else plain summary lines every ``every_s`` seconds."""
    return UpdateProgressBar(refresh_rate) if bar else PlainProgress(every_s)
