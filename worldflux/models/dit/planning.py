"""Goal planning of the DiT family: CEM over action sequences toward a goal frame.

As NWM's ``planning_eval.py`` (facebookresearch/nwm @ 3f6cd8e) does, action sequences are scored
by a distance between the last frame the model predicts and the goal frame (NWM uses LPIPS on
decoded frames; here the distance is on latents, ``plan_metric``: l1, l2 or cosine, after an
optional Gaussian blur of ``plan_blur`` latent pixels, which gives small pixel-space presets a
signal when the predicted and the goal object do not overlap). The optimiser is
:class:`worldflux.planning.cem.CEMPlanner`; each predicted frame takes ``plan_sample_steps`` DDIM
steps of the EMA denoiser.

The planners see flat latents ``z (N, Z)`` and step them with ``plan_next``. A CDiT step needs the
whole context window, so :class:`_GoalView` hands the planner the last frame only and keeps the
window of every sequence itself: a ``plan_next`` call on a tensor it did not produce starts the
sequences again from the current window (the planner restarts from the same ``z`` every
iteration). The score is then the distance of the last predicted frame alone, as in NWM.

Axis legend: ``B`` environments, ``N`` flat batch of sequences, ``K`` context frames,
``C, Hh, W`` latent channels, height and width, ``A`` action size.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from worldflux.errors import ShapeError


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``x (N, C, Hh, W)`` (reflect padding); identity at ``sigma=0``."""
    if sigma <= 0:
        return x
    radius = max(1, int(3 * sigma))
    radius = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    pos = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (pos / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    kx = kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    ky = kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kx, groups=c)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), ky, groups=c)


class _GoalView:
    """The planner's view of a DiT: flat last-frame latents, windows kept on the side."""

    def __init__(self, model: Any, window: Tensor, samples: int) -> None:
        self.model, self.window = model, window  # (B, K, C, Hh, W)
        self.samples = samples
        self.shape = window.shape[2:]
        self._last: Tensor | None = None
        self._history: Tensor | None = None

    def flat(self, z: Tensor) -> Tensor:
        """Blurred latents ``(N, C, Hh, W)`` -> ``(N, Z)`` (what the distance compares)."""
        return gaussian_blur(z, self.model.config.plan_blur).flatten(1)

    def plan_encode(self, obs: Any, task: Tensor | None) -> Tensor:
        """Goal latents ``(B, Z)`` of goal frames ``(B, *obs_shape)``."""
        return self.flat(self.model.encode(obs))

    def plan_next(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        """The next frame's (blurred, flat) latent for every sequence."""
        if z is not self._last:  # a new pass over the horizon: restart from the current window
            self._history = self.window.repeat_interleave(z.shape[0] // self.window.shape[0], 0)
        assert self._history is not None
        c = self.model.config
        nxt = self.model.predict_next(
            self._history, action, num_steps=c.plan_sample_steps, sampler="ddim"
        )
        self._history = torch.cat(
            [self._history[:, 1:], self.model.as_context(nxt).unsqueeze(1)], 1
        )
        self._last = self.flat(nxt)
        return self._last


class DiTPlanning:
    """``act(obs, state, goal=...)`` and ``score_goal`` for :class:`~worldflux.models.dit.module.DiT`."""

    def _planner(self) -> Any:
        from worldflux.planning.cem import CEMPlanner

        c = self.config  # type: ignore[attr-defined]
        return CEMPlanner(
            action_dim=c.action_dim,
            horizon=c.plan_horizon,
            iterations=c.plan_iterations,
            num_samples=c.plan_samples,
            num_elites=c.plan_elites,
            objective="goal",
            goal_metric=c.plan_metric,
        )

    @torch.no_grad()
    def act(
        self,
        obs: Any,
        state: Any = None,
        *,
        goal: Any = None,
        first: Tensor | None = None,
        eval_mode: bool = False,
        task: Any = None,
    ) -> tuple[Tensor, Any]:
        """Plan with CEM toward ``goal`` (goal frames ``(B, *obs_shape)``); actions ``(B, A)``.

        ``state`` carries the context window of past latents and the previous plan (its mean
        warm-starts the next one); ``first`` restarts the window at episode starts.
        """
        if goal is None:
            raise ShapeError(
                "DiT acts by planning toward a goal: pass goal=<goal frames (B, C, H, W)>"
            )
        z = self.encode(obs)  # type: ignore[attr-defined]
        if z.dim() != 4:
            raise ShapeError(
                f"act takes one frame per environment (B, C, H, W), got {tuple(z.shape)}"
            )
        b, k = z.shape[0], self.config.context_size  # type: ignore[attr-defined]
        window = z.unsqueeze(1).expand(-1, k, -1, -1, -1)
        prev = None
        if state is not None:
            window = torch.cat([state["window"][:, 1:], z.unsqueeze(1)], 1)
            prev = state["mean"]
            if first is not None:
                restart = torch.as_tensor(first, device=z.device).bool()
                fresh = z.unsqueeze(1).expand(-1, k, -1, -1, -1)
                window = torch.where(restart[:, None, None, None, None], fresh, window)
                prev = prev * (~restart)[:, None, None].to(prev.dtype)
        planner = self._planner()
        view = _GoalView(self, window, planner.num_samples)
        goal_z = view.plan_encode(goal, None)
        if goal_z.shape[0] != b:
            raise ShapeError(
                f"goal must hold one frame per environment ({b}), got {goal_z.shape[0]}"
            )
        result = planner.plan(view, view.flat(z), prev_mean=prev, eval_mode=eval_mode, goal=goal_z)
        return result.action, {"window": window, "mean": result.mean}

    @torch.no_grad()
    def score_goal(self, state: Any, goal: Any) -> Tensor:
        """Minus the latent distance ``(B,)`` of the latest frame of ``state`` to ``goal`` frames."""
        z = state["window"][:, -1] if isinstance(state, dict) else state
        view = _GoalView(self, self._window(z), 1)  # type: ignore[attr-defined]
        from worldflux.planning.objectives import latent_distance

        return -latent_distance(view.flat(z), view.plan_encode(goal, None), self.config.plan_metric)  # type: ignore[attr-defined]
