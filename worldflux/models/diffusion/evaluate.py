"""Open-loop prediction quality of a diffusion world model against the copy-last-frame baseline.

The model observes the first ``context`` frames of each held-out sequence, then imagines the next
``horizon`` frames under the recorded actions (its configured sampler); the PSNR of those frames
against the truth is compared with the PSNR of repeating the last observed frame.

Axis legend: ``B`` sequences, ``T`` time, ``C, S`` image channels and side, ``A`` actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldflux.errors import ShapeError


def psnr(pred: Tensor, truth: Tensor) -> Tensor:
    """Mean PSNR (dB) of ``[0, 1]`` images over all leading axes (per-image MSE, floored)."""
    mse = ((pred - truth) ** 2).flatten(-3).mean(-1).clamp(min=1e-10)
    return (10 * torch.log10(1 / mse)).mean()


@torch.no_grad()
def open_loop_psnr(
    model: Any, batch: Mapping[str, Any], context: int = 4, horizon: int = 10, seed: int = 0
) -> dict[str, float]:
    """``{"model": dB, "copy_last": dB}`` over ``horizon`` imagined steps after ``context``.

    Args:
        model: a diffusion world model (``observe``, ``rollout``, ``decode``).
        batch: ``{"obs": (B, T, C, S, S) uint8, "action": (B, T, A), "first": (B, T)}``,
            ``T >= context + horizon``, in the worldflux batch format.
        context, horizon: observed and imagined steps.
        seed: seed of the sampler's noise.
    """
    obs = torch.as_tensor(batch["obs"])
    if obs.dim() != 5 or obs.shape[1] < context + horizon:
        raise ShapeError(
            f"obs must be (B, T, C, S, S) with T >= context + horizon = {context + horizon}, "
            f"got {tuple(obs.shape)}"
        )
    action = torch.as_tensor(batch["action"])
    first = torch.as_tensor(batch["first"])
    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    try:
        _, state = model.observe(obs[:, :context], action[:, :context], first[:, :context])
        rollout = model.rollout(state, action[:, context : context + horizon])
        pred = model.decode(rollout)["obs"].cpu()
    finally:
        model.train(was_training)
    truth = obs[:, context : context + horizon].float() / 255.0
    last = obs[:, context - 1 : context].float().div(255.0).expand_as(truth)
    return {"model": float(psnr(pred, truth)), "copy_last": float(psnr(last, truth))}


def catch_sequences(
    episodes: int, length: int, size: int = 16, seed: int = 12345
) -> dict[str, Tensor]:
    """Held-out Catch sequences under a uniformly random policy (the embedded Catch; ``seed``
    differs from training's), each starting at an episode's first step."""
    from worldflux.envs.embedded import Catch

    env = Catch(size=size, seed=seed)
    rng = np.random.default_rng(seed)
    obs, acts, firsts = [], [], []
    for _ in range(episodes):
        o = env.reset()
        frames, actions = [next(iter(o.values()))], [np.zeros(3, np.float32)]
        for _ in range(length - 1):
            a = np.eye(3, dtype=np.float32)[rng.integers(3)]
            o, _, done, _ = env.step(a)
            frames.append(next(iter(o.values())))
            actions.append(a)
            if done:
                break
        if len(frames) < length:
            raise ShapeError(f"Catch episodes last fewer than {length} steps")
        obs.append(np.stack(frames))
        acts.append(np.stack(actions))
        first = np.zeros(length, bool)
        first[0] = True
        firsts.append(first)
    return {
        "obs": torch.as_tensor(np.stack(obs)),
        "action": torch.as_tensor(np.stack(acts)),
        "first": torch.as_tensor(np.stack(firsts)),
    }
