"""Held-out evaluation of IRIS on the embedded Catch: what the world model predicts on episodes the
training never saw, and the return of the agent against a uniformly random policy.

* :func:`catch_episodes` collects whole Catch episodes under a random policy with a seed of its
  own (training's environments use other seeds), in the replay's layout.
* :func:`held_out_accuracy` measures the world model teacher-forced on those episodes, exactly as
  its training loss reads a sequence: next-token accuracy (against chance, ``1 / vocab_size``, and
  against predicting that each token repeats the previous frame's), reward-sign and episode-end
  accuracy (also on the steps with a non-zero reward alone), and the tokenizer's L1 error.
* :func:`object_accuracy` asks whether the tokenizer keeps what the agent must see: over every
  Catch state (ball cell x paddle column), the share of reconstructed frames whose ball and paddle
  colours are brightest in the right grid cells.
* :func:`catch_return` plays held-out episodes with the agent (evaluation mode: temperature 0.5)
  or with uniformly random actions on the same seeds.

Axis legend: ``N`` episodes, ``T`` steps, ``K`` tokens per frame, ``A`` actions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from worldflux.errors import ShapeError

#: Seeds of the held-out episodes (training's environments are seeded from the run's seed).
HELD_OUT_SEED = 10_000


def _catch(size: int, seed: int, **env: Any) -> Any:
    from worldflux.envs.embedded import Catch

    return Catch(size=size, seed=seed, **env)


def _frame(obs: Any) -> np.ndarray:
    return next(iter(obs.values()))


def catch_episodes(
    episodes: int, size: int = 16, seed: int = HELD_OUT_SEED, **env: Any
) -> dict[str, Tensor]:
    """``episodes`` whole Catch episodes under uniformly random actions, in the replay's layout:
    ``obs (N, T, 3, S, S)`` uint8, ``action (N, T, 3)`` (the one that led to ``obs``; zero at the
    reset), ``reward``, ``first``, ``terminal`` ``(N, T)``. ``env``: other Catch arguments."""
    if episodes < 1:
        raise ShapeError(f"episodes must be >= 1, got {episodes}")
    catch = _catch(size, seed, **env)
    rng = np.random.default_rng(seed)
    eye = np.eye(3, dtype=np.float32)
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "action", "reward", "terminal")}
    for _ in range(episodes):
        frames, actions, rewards, done = (
            [_frame(catch.reset())],
            [np.zeros(3, np.float32)],
            [0.0],
            False,
        )
        while not done:
            a = eye[rng.integers(3)]
            obs, r, done, _ = catch.step(a)
            frames.append(_frame(obs)), actions.append(a), rewards.append(r)
        out["obs"].append(np.stack(frames))
        out["action"].append(np.stack(actions))
        out["reward"].append(np.asarray(rewards, np.float32))
        out["terminal"].append(np.arange(len(frames)) == len(frames) - 1)
    batch = {k: torch.as_tensor(np.stack(v)) for k, v in out.items()}
    first = torch.zeros_like(batch["terminal"])
    first[:, 0] = True
    return {**batch, "first": first}


def _windows(batch: dict[str, Tensor], length: int) -> dict[str, Tensor]:
    """Cut ``(N, T, ...)`` episodes into windows of ``length`` steps covering every step
    (starts ``0, length - 1, ...`` and the last window ending at ``T``)."""
    t = batch["obs"].shape[1]
    if t < length:
        raise ShapeError(f"episodes of {t} steps are shorter than a window of {length}")
    starts = sorted({*range(0, t - length + 1, length - 1), t - length})
    return {k: torch.cat([v[:, s : s + length] for s in starts]) for k, v in batch.items()}


@torch.no_grad()
def held_out_accuracy(model: Any, batch: dict[str, Tensor], chunk: int = 64) -> dict[str, float]:
    """The world model's accuracies and the tokenizer's error on held-out episodes ``batch``
    (from :func:`catch_episodes`), read in windows of ``max_blocks + 1`` replay steps.

    Returns ``token_accuracy``, ``chance`` (``1 / vocab_size``), ``copy_accuracy`` (each token
    predicted equal to the same token of the previous frame, on the same labels),
    ``reward_accuracy``, ``reward_accuracy_nonzero`` (steps whose reward is not 0),
    ``end_accuracy``, ``reconstruction`` (mean L1 in ``[-1, 1]``) and ``labels``.
    """
    from worldflux.models.token.losses import world_model_targets

    win = _windows(batch, model.config.max_blocks + 1)
    k = model.config.tokens_per_frame
    was_training = model.training
    model.eval()
    hits = {n: [] for n in ("tok", "copy", "rew", "rew_nz", "end")}
    rec = []
    try:
        for s in range(0, win["obs"].shape[0], chunk):
            part = {n: v[s : s + chunk] for n, v in win.items()}
            x = model.frames(part["obs"], 2)
            q = model.tokenizer.encode(x.flatten(0, 1))
            rec.append((model.tokenizer.decode(q.z_q) - x.flatten(0, 1)).abs().mean((1, 2, 3)))
            t = world_model_targets(model, part, x)
            out = model.world_model(t.tokens)
            seen = t.obs_labels >= 0
            pred = out.obs[:, :-1].flatten(0, 1).argmax(-1)
            hits["tok"].append((pred == t.obs_labels)[seen])
            # the copy baseline: label j (token j + 1 of the sequence) repeats token j + 1 - K
            flat = t.tokens.reshape(part["obs"].shape[0], -1, k + 1)[..., :k].flatten(1)
            prev = torch.cat([torch.full_like(flat[:, :k], -2), flat[:, :-k]], 1)[:, 1:]
            hits["copy"].append((prev.reshape(-1) == t.obs_labels)[seen])
            rew_pred = out.reward.flatten(0, 1).argmax(-1)
            valid = t.valid
            hits["rew"].append((rew_pred == t.reward_labels)[valid])
            hits["rew_nz"].append((rew_pred == t.reward_labels)[valid & (t.reward_labels != 1)])
            hits["end"].append((out.end.flatten(0, 1).argmax(-1) == t.end_labels)[valid])
    finally:
        model.train(was_training)

    def mean(parts: list[Tensor]) -> float:
        x = torch.cat(parts).float()
        return float(x.mean()) if x.numel() else float("nan")

    return {
        "token_accuracy": mean(hits["tok"]),
        "chance": 1.0 / model.config.vocab_size,
        "copy_accuracy": mean(hits["copy"]),
        "reward_accuracy": mean(hits["rew"]),
        "reward_accuracy_nonzero": mean(hits["rew_nz"]),
        "end_accuracy": mean(hits["end"]),
        "reconstruction": float(torch.cat(rec).mean()),
        "labels": float(sum(int(h.numel()) for h in hits["tok"])),
    }


@torch.no_grad()
def object_accuracy(model: Any, size: int = 16, rows: int = 8, cols: int = 5) -> dict[str, float]:
    """``{"ball": share, "paddle": share}`` of the ``(rows - 1) * cols * cols`` Catch states whose
    frame, encoded to tokens and decoded, shows the ball (paddle) nearest its colour in the right
    cell of the grid (chance: ``1 / ((rows - 1) * cols)`` and ``1 / cols``)."""
    from worldflux.envs.embedded import _COLOURS

    catch = _catch(size, 0, rows=rows, cols=cols)
    states = [(r, c, p) for r in range(rows - 1) for c in range(cols) for p in range(cols)]
    frames = []
    for r, c, p in states:  # the embedded Catch has no public state setter: set it to render
        catch._ball[:] = (r, c)
        catch._paddle = p
        frames.append(catch.render().transpose(2, 0, 1))
    was_training = model.training
    model.eval()
    try:
        x = model.frames(torch.as_tensor(np.stack(frames)), 1)
        rec = model.tokenizer.decode(model.tokenizer.encode(x).z_q).add(1).div(2).clamp(0, 1)
    finally:
        model.train(was_training)
    # mean colour of each grid cell, as Catch.render maps pixels to cells
    ys = torch.as_tensor(np.arange(size) * rows // size)
    xs = torch.as_tensor(np.arange(size) * cols // size)
    onehot = (
        F.one_hot(ys, rows).float().T[:, None, :, None]
        * F.one_hot(xs, cols).float().T[None, :, None, :]
    )
    cells = torch.einsum("ncij,rkij->ncrk", rec.cpu(), onehot) / onehot.sum((2, 3))
    ball, paddle = (torch.as_tensor(_COLOURS[i] / 255.0).float()[None, :, None] for i in (1, 2))
    ball_cell = -(cells[:, :, : rows - 1].flatten(2) - ball).pow(2).sum(1)
    paddle_cell = -(cells[:, :, rows - 1] - paddle).pow(2).sum(1)
    truth = torch.as_tensor(states)
    return {
        "ball": float((ball_cell.argmax(1) == truth[:, 0] * cols + truth[:, 1]).float().mean()),
        "paddle": float((paddle_cell.argmax(1) == truth[:, 2]).float().mean()),
    }


@torch.no_grad()
def catch_return(
    model: Any | None, episodes: int, size: int = 16, seed: int = HELD_OUT_SEED, **env: Any
) -> tuple[float, float]:
    """Mean and standard error of the return over ``episodes`` held-out Catch episodes (one
    environment per episode, seeds ``seed, seed + 1, ...``), played by ``model`` in evaluation
    mode or, when ``model`` is ``None``, by uniformly random actions."""
    if episodes < 1:
        raise ShapeError(f"episodes must be >= 1, got {episodes}")
    was_training = model.training if model is not None else False
    if model is not None:
        model.eval()
    rng = np.random.default_rng(seed)
    returns = []
    try:
        for i in range(episodes):
            catch = _catch(size, seed + i, **env)
            obs, state, total, done = _frame(catch.reset()), None, 0.0, False
            while not done:
                if model is None:
                    a = np.eye(3, dtype=np.float32)[rng.integers(3)]
                else:
                    act, state = model.act(torch.as_tensor(obs)[None], state, eval_mode=True)
                    a = act[0].cpu().numpy()
                o, r, done, _ = catch.step(a)
                obs, total = _frame(o), total + r
            returns.append(total)
    finally:
        if model is not None:
            model.train(was_training)
    r = np.asarray(returns)
    return float(r.mean()), float(r.std(ddof=1) / np.sqrt(len(r))) if len(r) > 1 else 0.0
