"""Is a trained IRIS's world model good enough to learn Catch from? A scripted policy tells.

Loads a ``token`` checkpoint trained on the embedded Catch and plays a scripted policy that reads
the ball and paddle columns from the *reconstructed* frame (the cell nearest each colour, as
:func:`worldflux.models.token.evaluate.object_accuracy`) and moves the paddle toward the ball:

* in the real environment on held-out episodes (is what the actor sees enough to catch?), against
  uniformly random actions, the checkpoint's actor (evaluation mode) and the three policies that
  always take one action;
* in the world model's imagination (``TokenEnv``, the actor-critic's training ground) from the
  frames of held-out episodes, ``--horizon`` steps: the mean imagined reward per step under the
  scripted policy, random actions, the actor and the constant policies. If the scripted policy
  earns more imagined reward than random actions, the imagined rewards carry the signal the
  actor-critic needs; if a constant policy earns more than random actions in imagination but
  less in the real environment, the actor-critic can exploit the world model's error;
* open loop under the recorded actions of held-out episodes, from the frames where a ball starts
  (every ``rows - 1`` steps): whether the imagined frames show the ball and paddle in the same
  columns as the real frames' reconstructions 1, 2, ... ``rows - 1`` steps later, and whether the
  imagined reward at the catch equals the real one;
* the teacher-forced next-token accuracy per grid row (and on the paddle row per action), and the
  paddle after one imagined step with all tokens sampled, all argmax, or the rows above the
  paddle's given their true tokens (does the imagined paddle follow the action?).

    python scripts/probe_token_policy.py CHECKPOINT [--rows 4 --cols 4 --size 16] [--episodes 50]
    python scripts/probe_token_policy.py CHECKPOINT --policies-only   # the first two parts only
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch
from torch.distributions import Categorical

from worldflux import create_world_model
from worldflux.envs.embedded import _COLOURS
from worldflux.models.token.evaluate import catch_episodes, catch_return
from worldflux.models.token.imagination import TokenEnv

#: Policies that always take one action (ids as :func:`scripted`'s).
CONSTANT = {"left": 0, "stay": 1, "right": 2}


def constant_return(action: int, episodes: int, geo: dict, seed: int = 10_000) -> float:
    """Mean return of always taking ``action`` on the held-out episodes."""
    from worldflux.envs.embedded import Catch

    out = []
    for i in range(episodes):
        env, done, total = Catch(seed=seed + i, **geo), False, 0.0
        env.reset()
        while not done:
            _, r, done, _ = env.step(np.eye(3, dtype=np.float32)[action])
            total += r
        out.append(total)
    return float(np.mean(out))


def columns(frames: torch.Tensor, rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ball and paddle columns ``(B,)`` read from frames ``(B, 3, S, S)`` in ``[0, 1]``."""
    s = frames.shape[-1]
    ys, xs = np.arange(s) * rows // s, np.arange(s) * cols // s
    cells = torch.zeros(frames.shape[0], 3, rows, cols)
    for r in range(rows):
        for c in range(cols):
            cells[:, :, r, c] = frames[:, :, ys == r][..., xs == c].mean((-2, -1))
    ball, pad = (torch.as_tensor(_COLOURS[i] / 255.0).float()[None, :, None, None] for i in (1, 2))
    ball_cell = -(cells[:, :, : rows - 1] - ball).pow(2).sum(1).flatten(1)
    pad_cell = -(cells[:, :, rows - 1] - pad[..., 0]).pow(2).sum(1)
    return ball_cell.argmax(1) % cols, pad_cell.argmax(1)


def scripted(frames: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Action ids (0 left, 1 stay, 2 right) moving the paddle toward the ball."""
    ball, pad = columns(frames, rows, cols)
    return torch.sign(ball - pad).long() + 1


@torch.no_grad()
def real_return(model: Any, episodes: int, geo: dict, seed: int = 10_000) -> tuple[float, float]:
    """The scripted policy on reconstructed frames of held-out episodes: mean return, SE."""
    from worldflux.envs.embedded import Catch

    out = []
    for i in range(episodes):
        env = Catch(seed=seed + i, **geo)
        obs, done, total = next(iter(env.reset().values())), False, 0.0
        while not done:
            x = model.frames(torch.as_tensor(obs)[None], 1)
            rec = model.tokenizer.decode(model.tokenizer.encode(x).z_q).add(1).div(2).clamp(0, 1)
            a = int(scripted(rec, geo["rows"], geo["cols"])[0])
            o, r, done, _ = env.step(np.eye(3, dtype=np.float32)[a])
            obs, total = next(iter(o.values())), total + r
        out.append(total)
    r = np.asarray(out)
    return float(r.mean()), float(r.std(ddof=1) / np.sqrt(len(r)))


@torch.no_grad()
def imagined_reward(
    model: Any, starts: torch.Tensor, policy: str, horizon: int, geo: dict
) -> float:
    """Mean imagined reward per step from start frames ``(B, 3, S, S)`` uint8."""
    tok, wm, ac = model.tokenizer, model.world_model, model.actor_critic
    env = TokenEnv(tok, wm, tok.encode(model.frames(starts, 1)).tokens)
    state = ac.initial_state(starts.shape[0])
    rewards = []
    for _ in range(horizon):
        frame = env.frame()
        if policy == "scripted":
            a = scripted(frame, geo["rows"], geo["cols"])
        elif policy == "random":
            a = torch.randint(3, (starts.shape[0],))
        elif policy in CONSTANT:
            a = torch.full((starts.shape[0],), CONSTANT[policy])
        else:
            logits, _, state = ac(frame, state)
            a = Categorical(logits=logits / 0.5).sample()
        r, _ = env.step(a)
        rewards.append(r)
    return float(torch.stack(rewards).mean())


@torch.no_grad()
def open_loop(model: Any, batch: dict, geo: dict) -> None:
    """Print the imagined frames' ball / paddle column agreement with the real frames per step."""
    rows, cols = geo["rows"], geo["cols"]
    obs, act, rew = batch["obs"], batch["action"].argmax(-1), batch["reward"]
    steps = rows - 1
    hits = torch.zeros(steps, 2)
    rew_hits, n = 0, 0
    for s in range(0, obs.shape[1] - steps, steps):
        tokens = model.tokenizer.encode(model.frames(obs[:, s], 1)).tokens
        env = TokenEnv(model.tokenizer, model.world_model, tokens)
        for h in range(1, steps + 1):
            r, _ = env.step(act[:, s + h])  # the replay's action at s + h led to obs[s + h]
            x = model.frames(obs[:, s + h], 1)
            rec = model.tokenizer.decode(model.tokenizer.encode(x).z_q).add(1).div(2).clamp(0, 1)
            (ib, ip), (tb, tp) = columns(env.frame(), rows, cols), columns(rec, rows, cols)
            hits[h - 1] += torch.stack([(ib == tb).float().sum(), (ip == tp).float().sum()])
        rew_hits += int((r == rew[:, s + steps]).sum())
        n += obs.shape[0]
    for h in range(steps):
        b, p = (hits[h] / n).tolist()
        print(f"  step {h + 1}: ball column {b:.3f}, paddle column {p:.3f} (n={n})")
    print(f"  imagined reward at the catch = real reward: {rew_hits / n:.3f}")


@torch.no_grad()
def row_accuracy(model: Any, batch: dict, rows: int) -> None:
    """Print the teacher-forced next-token accuracy per grid row (one token per cell), and on
    the paddle row (the last) per action that led to the frame (0 left, 1 stay, 2 right)."""
    from worldflux.models.token.evaluate import _windows
    from worldflux.models.token.losses import world_model_targets

    win = _windows(batch, model.config.max_blocks + 1)
    k = model.config.tokens_per_frame
    x = model.frames(win["obs"], 2)
    t = world_model_targets(model, win, x)
    b = x.shape[0]
    pred = model.world_model(t.tokens).obs[:, :-1].argmax(-1)  # (B, L * K - 1)
    labels = t.obs_labels.reshape(b, -1)
    pad = torch.full((b, 1), -1)
    pred, labels = (torch.cat([pad, v], 1).reshape(b, -1, k) for v in (pred, labels))
    act = t.tokens.reshape(b, -1, k + 1)[..., k]  # action taken at each step
    led = torch.cat([torch.full((b, 1), -1), act[:, :-1]], 1)[..., None].expand_as(labels)
    hit, seen = (pred == labels).float(), labels >= 0
    per_row = k // rows
    for r in range(rows):
        cols = slice(r * per_row, (r + 1) * per_row)
        h, m = hit[..., cols], seen[..., cols]
        line = f"  row {r}: {float(h[m].mean()):.3f} (n={int(m.sum())})"
        if r == rows - 1:
            for a in range(3):
                ma = m & (led[..., cols] == a)
                line += f"; after action {a}: {float(h[ma].mean()):.3f}"
        print(line)


@torch.no_grad()
def paddle_check(model: Any, batch: dict, geo: dict) -> None:
    """One imagined step from every frame under the recorded action: how often the imagined
    paddle column is the real one when (a) all tokens are sampled, (b) all are the argmax, (c) the
    rows above the paddle's are the true next frame's tokens and only the paddle row is sampled."""
    rows, cols = geo["rows"], geo["cols"]
    obs, act = batch["obs"], batch["action"].argmax(-1)
    k = model.config.tokens_per_frame
    first_paddle = k - k // rows
    hits, n = torch.zeros(3), 0
    for s in range(obs.shape[1] - 1):
        start = model.tokenizer.encode(model.frames(obs[:, s], 1)).tokens
        truth = model.tokenizer.encode(model.frames(obs[:, s + 1], 1)).tokens
        _, real = columns(model.tokenizer.decode(model.tokenizer.embed_tokens(truth)), rows, cols)
        for mode in range(3):
            env = TokenEnv(model.tokenizer, model.world_model, start)
            out = model.world_model(act[:, s + 1].reshape(-1, 1), env.cache)
            new = []
            for i in range(k):
                logits = out.obs[:, -1]
                if mode == 2 and i < first_paddle:
                    tok = truth[:, i]
                elif mode == 1:
                    tok = logits.argmax(-1)
                else:
                    tok = Categorical(logits=logits).sample()
                new.append(tok)
                out = model.world_model(tok.reshape(-1, 1), env.cache)
            env.tokens = torch.stack(new, 1)
            _, pad = columns(env.frame(), rows, cols)
            hits[mode] += float((pad == real).float().sum())
        n += obs.shape[0]
    a, b, c = (hits / n).tolist()
    print(f"  paddle column after one imagined step (n={n}): all sampled {a:.3f}, all argmax "
          f"{b:.3f}, rows above the paddle true and the paddle row sampled {c:.3f}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--cols", type=int, default=4)
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--horizon", type=int, default=8)
    p.add_argument(
        "--policies-only",
        action="store_true",
        help="only the returns and imagined rewards, also of the constant policies",
    )
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    geo = {"size": a.size, "rows": a.rows, "cols": a.cols}
    model = create_world_model(a.checkpoint).eval()
    print(f"real env, {a.episodes} held-out episodes (mean return, SE):")
    print("  scripted on reconstructions", real_return(model, a.episodes, geo))
    print("  actor (eval mode)           ", catch_return(model, a.episodes, **geo))
    print("  random                      ", catch_return(None, a.episodes, **geo))
    for name, action in CONSTANT.items():
        print(f"  always {name:22s}", round(constant_return(action, a.episodes, geo), 2))
    obs = catch_episodes(a.episodes, **geo)["obs"]
    starts = obs[:, :: max(1, obs.shape[1] // 4)].flatten(0, 1)
    print(f"imagination, {starts.shape[0]} start frames, {a.horizon} steps (reward per step):")
    for policy in ("scripted", "random", "actor", *CONSTANT):
        print(f"  {policy:9s}", round(imagined_reward(model, starts, policy, a.horizon, geo), 3))
    if a.policies_only:
        return
    print("teacher-forced next-token accuracy per grid row (the last is the paddle's):")
    row_accuracy(model, catch_episodes(a.episodes, **geo), a.rows)
    print("the paddle after one imagined step:")
    paddle_check(model, catch_episodes(a.episodes, **geo), geo)
    print("open loop under the recorded actions (the step after a catch shows a new ball):")
    open_loop(model, catch_episodes(a.episodes, **geo), geo)


if __name__ == "__main__":
    main()
