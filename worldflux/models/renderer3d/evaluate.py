"""Novel-view and future-view evaluation of renderer3d models, and orbit videos.

- :func:`novel_view_metrics`: on multi-view sequences, the model sees the context views of a step
  and renders the held-out query views (poses it was not shown); PSNR and SSIM against the truth,
  next to the nearest-context-view baseline (the context image whose pose is closest to the
  query's, i.e. what a model without 3-D understanding can best return). The same for future
  frames: the state of the first step is rolled out under the recorded actions and rendered at
  the query poses of later steps, against the first step's nearest context view.
- :func:`orbit_frames`: a state rendered from cameras circling the room.
- :class:`NovelViewReport`: a Lightning callback logging both every N updates (``eval/nvs/*``)
  and writing the orbit video to ``<run dir>/videos`` and TensorBoard.

Axis legend: ``B`` sequences, ``T`` steps, ``V`` views, ``Q`` query views, ``N`` images.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from worldflux.models.renderer3d import rays as R


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio (dB) per image ``(N,)`` of images in ``[0, 1]`` ``(N, 3, H, W)``."""
    mse = (pred - target).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return -10 * torch.log10(mse)


def ssim(pred: Tensor, target: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Structural similarity per image ``(N,)`` with a Gaussian window (Wang et al. 2004).

    The window shrinks to the image size (odd) for small images.
    """
    window = min(window, pred.shape[-1] - (1 - pred.shape[-1] % 2), pred.shape[-2])
    x = torch.arange(window, dtype=pred.dtype, device=pred.device) - window // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(3, 1, window, window)

    def blur(img: Tensor) -> Tensor:
        return F.conv2d(img, kernel, groups=3)

    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = blur(pred), blur(target)
    var_x = blur(pred * pred) - mu_x**2
    var_y = blur(target * target) - mu_y**2
    cov = blur(pred * target) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).flatten(1).mean(1)


def nearest_view(images: Tensor, poses: Tensor, query: Tensor) -> Tensor:
    """For each query pose ``(B, Q, 7)`` the image ``(B, Q, 3, H, W)`` of the closest pose.

    Poses are compared as 7-d vectors (position and the viewing angles' cosines and sines).
    """
    dist = torch.cdist(query, poses)  # (B, Q, V)
    idx = dist.argmin(-1)
    return torch.stack([images[b, idx[b]] for b in range(images.shape[0])])


def _scores(pred: Tensor, target: Tensor) -> tuple[float, float]:
    p, t = pred.flatten(0, 1), target.flatten(0, 1)
    return float(psnr(p, t).mean()), float(ssim(p, t).mean())


@torch.no_grad()
def novel_view_metrics(model: Any, obs: Any, action: Tensor) -> dict[str, float]:
    """Novel-view and future-view PSNR/SSIM of ``model`` and of the nearest-view baseline.

    Args:
        model: a :class:`~worldflux.models.renderer3d.module.Renderer3D`.
        obs: multi-view observations ``{"views": (B, T, 3V, H, W), "poses": (B, T, 7V)}`` with
            ``V > query_views``.
        action: actions ``(B, T, A)`` (``action[:, t]`` led to step ``t``).

    Returns:
        ``nvs/psnr``, ``nvs/ssim``, ``nvs/baseline_psnr``, ``nvs/baseline_ssim`` (held-out views
        of each step) and ``future/...`` (steps ``1..T-1`` rendered from the first step's state).
    """
    images, poses = model.views_and_poses(obs)
    (ci, cp), (qi, qp) = model.split_views(images, poses)
    b, t = ci.shape[:2]
    z = model.encode_views(ci, cp)  # (B, T, Z)
    pred = model.render(z.flatten(0, 1), qp.flatten(0, 1))
    base = nearest_view(ci.flatten(0, 1), cp.flatten(0, 1), qp.flatten(0, 1))
    out: dict[str, float] = {}
    out["nvs/psnr"], out["nvs/ssim"] = _scores(pred, qi.flatten(0, 1))
    out["nvs/baseline_psnr"], out["nvs/baseline_ssim"] = _scores(base, qi.flatten(0, 1))
    if t >= 2:
        act = torch.as_tensor(action, device=z.device).float()
        states = model.rollout(z[:, 0], act[:, 1:]).states  # (B, T-1, Z)
        fut = model.render(states.flatten(0, 1), qp[:, 1:].flatten(0, 1))
        stale = torch.stack(
            [nearest_view(ci[:, 0], cp[:, 0], qp[:, k]) for k in range(1, t)], 1
        ).flatten(0, 1)
        truth = qi[:, 1:].flatten(0, 1)
        out["future/psnr"], out["future/ssim"] = _scores(fut, truth)
        out["future/baseline_psnr"], out["future/baseline_ssim"] = _scores(stale, truth)
    return out


@torch.no_grad()
def orbit_frames(model: Any, state: Tensor, frames: int = 24) -> np.ndarray:
    """``(frames, H, W, 3)`` uint8: the state ``(Z,)`` rendered from a camera circling the room."""
    poses = R.orbit_poses(frames, device=state.device)[None]
    img = model.render(state[None], poses)[0]
    return (img.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


class NovelViewReport(L.Callback):
    """Every ``every_n_updates`` updates: novel/future-view metrics and an orbit video.

    Enable with ``+callbacks.novel_view._target_=worldflux.models.renderer3d.evaluate.NovelViewReport``.

    Args:
        every_n_updates: interval in gradient updates.
        samples: replayed sequences per evaluation.
        length: steps per sequence.
        frames: frames of the orbit video.
    """

    def __init__(
        self, every_n_updates: int = 200, samples: int = 8, length: int = 4, frames: int = 24
    ) -> None:
        self.every, self.samples, self.length, self.frames = (
            every_n_updates,
            samples,
            length,
            frames,
        )
        self.history: list[dict[str, float]] = []

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        updates = getattr(getattr(trainer, "datamodule", None), "updates", trainer.global_step)
        if self.every > 0 and updates % self.every == 0:
            self.report(trainer, pl_module, updates)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """A last report, and the whole history in ``<run dir>/novel_view.json``."""
        updates = getattr(getattr(trainer, "datamodule", None), "updates", trainer.global_step)
        if not self.history or self.history[-1]["updates"] != updates:
            self.report(trainer, pl_module, updates)
        if self.history and trainer.is_global_zero:
            path = Path(trainer.default_root_dir) / "novel_view.json"
            path.write_text(json.dumps(self.history, indent=1))

    def report(self, trainer: L.Trainer, pl_module: Any, updates: int) -> None:
        """Evaluate on a replay sample, log the metrics and the orbit video."""
        replay = getattr(getattr(trainer, "datamodule", None), "replay", None)
        if replay is None or not trainer.is_global_zero:
            return
        if replay.spec.single or not replay.can_sample(self.length):
            return
        sample = replay.sample(self.samples, self.length)
        dev = pl_module.device
        obs = {k: torch.as_tensor(v, device=dev) for k, v in sample["obs"].items()}
        was = pl_module.training
        pl_module.eval()
        try:
            metrics = novel_view_metrics(
                pl_module, obs, torch.as_tensor(sample["action"], device=dev)
            )
            images, poses = pl_module.views_and_poses({k: v[:1, 0] for k, v in obs.items()})
            frames = orbit_frames(pl_module, pl_module.encode_views(images, poses)[0], self.frames)
        finally:
            pl_module.train(was)
        self.history.append({"updates": float(updates), **metrics})
        for logger in trainer.loggers:
            logger.log_metrics({f"eval/{k}": v for k, v in metrics.items()}, step=updates)
        from worldflux.training.video import log_video, write_video

        write_video(Path(trainer.default_root_dir) / "videos" / f"orbit-{updates:07d}", frames)
        log_video(trainer.loggers, "video/orbit", frames, updates)
