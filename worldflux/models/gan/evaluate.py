"""Open-loop evaluation of a trained GameGAN on an environment (the issue's learning criterion).

Two measurements on held-out episodes:

- **prediction**: from ``context`` observed frames, roll out ``horizon`` steps under the actions
  that were really taken; PSNR and SSIM against the real frames, next to the copy-last-frame
  baseline (repeat the last observed frame);
- **action response**: from the same start, roll out all-``a`` and all-``b`` action sequences
  (e.g. left and right) and compare each with the real futures under both sequences: a model
  that responds to actions is closer to the future of the actions it was given.

Axis legend: ``B`` batch, ``H`` horizon, ``C, S`` image channels and side.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from worldflux.nn.image_metrics import frame_ssim


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """PSNR in dB per frame of images in ``[0, 1]`` (``(..., C, S, S)`` -> ``(...)``)."""
    mse = (pred - target).pow(2).flatten(-3).mean(-1).clamp_min(1e-10)
    return 10 * torch.log10(1.0 / mse)


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """SSIM per frame of images in ``[0, 1]`` (``(..., C, S, S)`` -> ``(...)``): the
    measurement of ``worldflux.compare.open_loop`` (:func:`worldflux.nn.image_metrics.frame_ssim`).
    """
    return frame_ssim(pred.flatten(0, -4), target.flatten(0, -4)).view(pred.shape[:-3])


def _image(obs: Any) -> np.ndarray:
    return next(iter(obs.values())) if isinstance(obs, dict) else obs


def _run(env: Any, actions: list[int], num_actions: int) -> list[np.ndarray]:
    frames = []
    for a in actions:
        obs, _, done, _ = env.step(np.eye(num_actions, dtype=np.float32)[a])
        frames.append(_image(obs))
        if done:
            break
    return frames


@dataclass
class Episode:
    """A held-out start: context frames, the taken actions and the real futures."""

    context: np.ndarray  # (context, C, S, S) uint8
    actions: np.ndarray  # (context + horizon,) indices; actions[t] led to frame t
    future: np.ndarray  # (horizon, C, S, S) under the taken actions
    future_a: np.ndarray  # (horizon, C, S, S) under all-``a``
    future_b: np.ndarray  # (horizon, C, S, S) under all-``b``


def collect(
    env: Any, num: int, context: int, horizon: int, ab: tuple[int, int], seed: int
) -> list[Episode]:
    """``num`` held-out starts from ``env`` (random policy), each ``horizon`` steps from the end."""
    rng = np.random.default_rng(seed)
    n = env.spec.action_dim
    out: list[Episode] = []
    while len(out) < num:
        frames = [_image(env.reset(seed=int(rng.integers(1 << 30))))]
        acts = [0]
        for _ in range(context - 1 + int(rng.integers(0, 4))):
            a = int(rng.integers(n))
            frames += _run(env, [a], n)
            acts.append(a)
        if len(frames) != len(acts):
            continue
        plan = [int(a) for a in rng.integers(0, n, horizon)]
        branches = [copy.deepcopy(env) for _ in range(3)]
        futures = [
            _run(e, p, n) for e, p in zip(branches, (plan, [ab[0]] * horizon, [ab[1]] * horizon))
        ]
        if min(len(f) for f in futures) < horizon:
            continue  # the episode ended inside the horizon
        out.append(
            Episode(
                np.stack(frames[-context:]),
                np.array(acts[-context:] + plan),
                *(np.stack(f) for f in futures),
            )
        )
    return out


#: What :func:`open_loop_scores` returns, in this order.
SCORES = (
    "psnr_model",
    "psnr_copy_last",
    "ssim_model",
    "ssim_copy_last",
    "response_a_db",
    "response_b_db",
)


@torch.no_grad()
def open_loop_scores(
    model: Any, episodes: list[Episode], ab: tuple[int, int], seed: int = 0
) -> dict[str, float]:
    """Mean PSNR/SSIM of rollouts and of copy-last-frame, and the action-response margins."""
    model.eval()
    n, ctx = model.config.action_dim, episodes[0].context.shape[0]
    b, h = len(episodes), episodes[0].future.shape[0]
    to = lambda a: torch.as_tensor(np.stack(a)).float() / 255.0  # noqa: E731
    obs = torch.as_tensor(np.stack([e.context for e in episodes]))
    acts = F.one_hot(torch.as_tensor(np.stack([e.actions for e in episodes])), n).float()
    acts[:, 0] = 0.0
    first = torch.zeros(b, ctx, dtype=torch.bool)
    first[:, 0] = True
    _, start = model.observe(obs, acts[:, :ctx], first)
    gen = torch.Generator().manual_seed(seed)

    def roll(actions: Tensor) -> Tensor:
        return model.decode({"frame": model.rollout(dict(start), actions, gen).states["frame"]})[
            "obs"
        ]

    truth, last = to([e.future for e in episodes]), to([e.context[-1] for e in episodes])
    pred = roll(acts[:, ctx:])
    copy_last = last[:, None].expand_as(truth)
    only = lambda k: F.one_hot(torch.full((b, h), k), n).float()  # noqa: E731
    pred_a, pred_b = roll(only(ab[0])), roll(only(ab[1]))
    true_a, true_b = to([e.future_a for e in episodes]), to([e.future_b for e in episodes])
    return {
        "psnr_model": psnr(pred, truth).mean().item(),
        "psnr_copy_last": psnr(copy_last, truth).mean().item(),
        "ssim_model": ssim(pred, truth).mean().item(),
        "ssim_copy_last": ssim(copy_last, truth).mean().item(),
        # own future minus the other action's future: > 0 when the rollout follows its actions
        "response_a_db": (psnr(pred_a, true_a) - psnr(pred_a, true_b)).mean().item(),
        "response_b_db": (psnr(pred_b, true_b) - psnr(pred_b, true_a)).mean().item(),
    }


def main() -> None:
    """``python -m worldflux.models.gan.evaluate <checkpoint or export>... [--size 16]``.

    With several models (e.g. a run's ``update-*.ckpt``) it prints one markdown row per model.
    """
    import argparse

    from worldflux import create_world_model
    from worldflux.envs.embedded import Catch

    p = argparse.ArgumentParser(description="Open-loop scores of a GameGAN on held-out Catch")
    p.add_argument("models", nargs="+", help="Lightning checkpoints or save_pretrained folders")
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--episodes", type=int, default=64)
    p.add_argument("--context", type=int, default=4)
    p.add_argument("--horizon", type=int, default=10)
    args = p.parse_args()
    # held-out: a seed range the training run (seed 0) never draws from; left = 0, right = 2
    env = Catch(size=args.size, seed=10_000)
    episodes = collect(env, args.episodes, args.context, args.horizon, (0, 2), seed=10_001)
    keys = list(SCORES)
    if len(args.models) > 1:
        print("| model | " + " | ".join(keys) + " |")
        print("|" + "---|" * (len(keys) + 1))
    for path in args.models:
        scores = open_loop_scores(create_world_model(path), episodes, (0, 2))
        if len(args.models) > 1:
            print(f"| {path} | " + " | ".join(f"{scores[k]:.3f}" for k in keys) + " |", flush=True)
        else:
            for key in keys:
                print(f"{key}: {scores[key]:.3f}")


if __name__ == "__main__":
    main()
