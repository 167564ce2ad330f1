"""Evaluation episodes: the policy's deterministic mode on fresh environments with their own seed.

:func:`run_episodes` is shared by ``python -m worldflux.eval`` and :class:`PeriodicEval`, the
callback that evaluates during training (``eval.every`` updates, ``eval.episodes`` episodes) and
once more when training ends. Evaluation is deterministic for a seed: the environments, the
random first action and torch's generator (MPPI samples even in eval mode) are all seeded, and
torch's global generator is restored afterwards, so evaluating never changes the training run.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np

from worldflux.errors import WorldFluxError


@dataclass
class EvalResult:
    """Returns and lengths of evaluation episodes, and the first episode's frames (if rendered)."""

    returns: list[float]
    lengths: list[int]
    frames: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    def metrics(self, prefix: str = "eval") -> dict[str, float]:
        """``{prefix}/return``, ``/return_std``, ``/length`` and ``/episodes``."""
        return {
            f"{prefix}/return": float(np.mean(self.returns)),
            f"{prefix}/return_std": float(np.std(self.returns)),
            f"{prefix}/length": float(np.mean(self.lengths)),
            f"{prefix}/episodes": float(len(self.returns)),
        }


def _render(envs: Any) -> np.ndarray | None:
    try:
        return np.asarray(envs.render(0))
    except (NotImplementedError, ImportError, WorldFluxError) as err:
        reason = str(err) or type(err).__name__
        warnings.warn(f"no video: this environment cannot render ({reason})", stacklevel=3)
        return None


def run_episodes(
    model: Any,
    env: Mapping[str, Any],
    episodes: int,
    seed: int,
    render: bool = False,
) -> EvalResult:
    """Play ``episodes`` episodes with ``model.act(..., eval_mode=True)`` (random without ``act``).

    Args:
        model: a world model; families without ``act`` are evaluated with random actions.
        env: the env config; one environment is used, seeded with ``seed``.
        episodes: number of finished episodes to play.
        seed: seed of the environment, the first (random) action and torch's generator.
        render: keep the first episode's frames; a warning says so when the env cannot render.
    """
    import torch

    from worldflux.envs.registry import make_vector_env
    from worldflux.training.collector import Collector

    if int(episodes) < 1:
        raise WorldFluxError(f"eval episodes must be >= 1, got {episodes}")
    policy = model if model is not None and model.supports("act") else None
    envs = make_vector_env({**dict(env), "num_envs": 1}, seed=int(seed))
    collector = Collector(envs, None, seed=int(seed), window=int(episodes))
    frames: list[np.ndarray] | None = [] if render else None
    devices = [model.device] if policy is not None and model.device.type == "cuda" else []
    # Restore each submodule's own mode afterwards: some stay in eval mode on purpose (EMA
    # targets), which a blanket model.train() would undo.
    modes = [(m, m.training) for m in model.modules()] if model is not None else []
    if model is not None:
        model.eval()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(seed))
            while collector.episodes < int(episodes):
                collector.step(policy if collector.last is not None else None, eval_mode=True)
                if frames is not None and collector.episodes == 0:
                    frame = _render(envs)
                    if frame is None:
                        frames = None
                    else:
                        frames.append(frame)
    finally:
        envs.close()
        for module, mode in modes:
            module.training = mode
    notes = [] if policy is not None else [f"{type(model).__name__} has no act(): random actions"]
    return EvalResult(
        returns=[s for s, _, _ in collector.unlogged],
        lengths=[n for _, n, _ in collector.unlogged],
        frames=np.stack(frames) if frames else None,
        notes=notes,
    )


class PeriodicEval(L.Callback):
    """Evaluate the policy every ``every_n_updates`` updates and when training ends.

    Logs ``eval/return`` (mean), ``eval/return_std``, ``eval/length`` and ``eval/episodes`` at
    the update they were measured at; with ``video`` the first episode of each evaluation goes
    to TensorBoard and to ``<run dir>/videos/eval-<update>.mp4`` (GIF without the video extra).
    Only rank 0 evaluates.

    Args:
        env: the env config to evaluate on (the train app passes the run's ``env``).
        every_n_updates: interval in updates; ``None`` evaluates only at the end.
        episodes: episodes per evaluation.
        seed: seed of every evaluation (the same episodes each time, so curves compare policies).
        final: evaluate when training ends.
        video: record the first episode of each evaluation.
        fps: frame rate of the videos.
    """

    def __init__(
        self,
        env: Mapping[str, Any],
        every_n_updates: int | None = None,
        episodes: int = 5,
        seed: int = 1_000_000,
        final: bool = True,
        video: bool = True,
        fps: int = 15,
    ) -> None:
        self.env = dict(env)
        self.every, self.episodes, self.seed = int(every_n_updates or 0), int(episodes), int(seed)
        self.final, self.video, self.fps = bool(final), bool(video), int(fps)
        self.last_update: int | None = None
        self.latest: dict[str, float] = {}
        # Updates completed so far. The datamodule's counter runs one ahead (Lightning fetches
        # the next batch before the current one's hooks), so this one is counted here.
        self.done = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        from worldflux.envs.registry import env_spec

        self.done = int(getattr(trainer.datamodule, "updates", trainer.global_step))

        replay = getattr(trainer.datamodule, "replay", None)
        data = getattr(replay, "spec", None)
        if data is not None and env_spec(self.env).to_dict() != data.to_dict():
            # Offline data from another environment: its model cannot act in this one.
            warnings.warn(
                f"evaluation is off: env {self.env.get('suite')}:{self.env.get('id')} does not "
                "have the spaces of the training data; name the dataset's environment with env=...",
                stacklevel=2,
            )
            self.every, self.final = 0, False

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.done += 1
        if self.every > 0 and self.done % self.every == 0:
            self.evaluate(trainer, pl_module, self.done)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self.final and self.last_update != self.done:
            self.evaluate(trainer, pl_module, self.done)

    def evaluate(self, trainer: L.Trainer, pl_module: Any, updates: int) -> dict[str, float]:
        """Run one evaluation on rank 0 and log it; return its metrics (empty on other ranks)."""
        import torch

        from worldflux.training.sharded import whole_model

        self.last_update = updates
        if getattr(pl_module, "sharding", None) is not None:
            pl_module = whole_model(pl_module)  # FSDP: every rank gathers, rank 0 plays
        if not trainer.is_global_zero:
            return {}
        result = run_episodes(pl_module, self.env, self.episodes, self.seed, render=self.video)
        self.latest = result.metrics()
        for logger in trainer.loggers:
            logger.log_metrics(self.latest, step=trainer.global_step)
        for key, value in self.latest.items():  # the train app reports callback metrics
            trainer.callback_metrics[key] = torch.tensor(value)
        if result.frames is not None:
            from worldflux.training.video import log_video, write_video

            name = Path(trainer.default_root_dir) / "videos" / f"eval-{updates:07d}"
            with contextlib.suppress(OSError):  # a video must never end a training run
                write_video(name, result.frames, self.fps)
            log_video(trainer.loggers, "video/eval", result.frames, trainer.global_step, self.fps)
        self.video = self.video and result.frames is not None  # warn about rendering only once
        return self.latest
