"""Probe a world model's memory path on the Memory task (world model only, no actor).

Random-action episodes of ``worldflux.envs.memory.Memory`` go through the real collector and
replay; the family's world-model loss (``probe_memory.wm_loss``) is minimised with Adam. At every
``--every`` updates, on held-out episodes (another environment seed) filtered with teacher-forced
posteriors (``model.observe`` with the recorded actions), it prints:

* ``gap``: reward prediction at the answer row for the right minus the wrong answer (the answer
  row's action replaced, everything else as recorded), mean over the scored rows, and ``acc``,
  the fraction of scored rows where the right answer gets the higher predicted reward. A world
  model that ties the reward to the remembered symbol gives gap ~2 and acc 1; chance is acc 0.5.
* ``imagined``: the same gap and fraction for the reward that imagination predicts: one prior
  step from the posterior state of the row the answer is chosen at (the actor's signal).
* ``lag k`` (``k = 0..lags``): held-out accuracy of a ridge-regression linear probe from the answer row's features
  to the symbol shown ``k`` rows before it (``k = 1``: the symbol the answer was chosen at,
  which the transition into the answer row reads directly; ``k = delay + 1``: the symbol the
  answer must name), for ``deter``, ``stoch`` and (R2I) the S5 ``hidden`` state of all layers.

Repeat mode only (``--mode repeat`` or ``cycle``): every step shows a symbol and every action
from step ``delay`` on is scored.

Usage::

    python scripts/probe_memory_path.py --model ssm:ci --delay 2 --updates 2000 --every 500
    python scripts/probe_memory_path.py --model dreamerv3:size1m --delay 2 --updates 1000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import yaml
from probe_memory import wm_loss

from worldflux import create_world_model
from worldflux.data.replay import Replay
from worldflux.envs.registry import make_vector_env
from worldflux.training.collector import Collector


def collect(args: argparse.Namespace, steps: int, seed: int) -> Replay:
    """``steps`` random-action steps of Memory in ``args.mode`` (one stream)."""
    cfg = {
        "suite": "embedded",
        "id": "memory",
        "mode": args.mode,
        "delay": args.delay,
        "cues": args.cues,
        "length": args.ep_length,
        "num_envs": 1,
    }
    envs = make_vector_env(cfg, seed=seed)
    replay = Replay(envs.spec, steps + 10, envs.num_envs, seed=seed)
    col = Collector(envs, replay, seed=seed)
    for _ in range(steps):
        col.step(None)
    return replay


def episodes(replay: Replay, length: int) -> dict[str, torch.Tensor]:
    """Whole episodes ``(N, length + 1, ...)`` (reset row first) from a replay."""
    n = int(replay.count.max())
    data = {k: np.asarray(v[0, :n]) for k, v in replay.data.items()}
    starts = [t for t in np.flatnonzero(data["first"]) if t + length + 1 <= n]
    out = {k: np.stack([v[t : t + length + 1] for t in starts]) for k, v in data.items()}
    return {
        "obs": torch.as_tensor(out["obs/obs"]),
        "action": torch.as_tensor(out["action"]).float(),
        "first": torch.as_tensor(out["first"]),
        "reward": torch.as_tensor(out["reward"]),
    }


@torch.no_grad()
def observe(model, eps: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)  # the same posterior samples for every variant
    states, _ = model.observe(eps["obs"], eps["action"], eps["first"])
    return states


@torch.no_grad()
def reward_gap(model, eps: dict[str, torch.Tensor], delay: int, cues: int) -> tuple[float, float]:
    """Mean (right - wrong) predicted reward at the answer rows and the fraction right > wrong."""
    sym = eps["obs"][..., :cues].argmax(-1)  # (N, T)
    n, t = sym.shape
    gaps = []
    for answer_row in range(delay + 1, t):
        target = sym[:, answer_row - 1 - delay]
        preds = []
        for shift in (0, 1):  # right answer, then another symbol
            variant = {k: v.clone() for k, v in eps.items()}
            answer = (target + shift) % cues
            variant["action"][:, answer_row] = torch.nn.functional.one_hot(answer, cues).float()
            states = observe(model, variant, seed=answer_row)
            keep = {
                k: states[k][:, answer_row] for k in ("deter", "stoch", "hidden") if k in states
            }
            preds.append(model.decode(keep)["reward"].reshape(n))
        gaps.append(preds[0] - preds[1])
    gap = torch.stack(gaps)
    return float(gap.mean()), float((gap > 0).float().mean())


@torch.no_grad()
def imagined_gap(model, eps: dict[str, torch.Tensor], delay: int, cues: int) -> tuple[float, float]:
    """The same for the actor's signal: the reward of the prior step taken from the posterior
    state of the row the answer is chosen at (what imagination predicts for the answer)."""
    states = observe(model, eps)
    sym = eps["obs"][..., :cues].argmax(-1)
    n, t = sym.shape
    gaps = []
    for row in range(delay, t - 1):  # the answer chosen at `row` names sym[row - delay]
        start = {k: states[k][:, row] for k in ("deter", "stoch", "hidden") if k in states}
        preds = []
        for shift in (0, 1):
            answer = (sym[:, row - delay] + shift) % cues
            torch.manual_seed(row)  # the same prior samples for both answers
            nxt = model.transition(start, torch.nn.functional.one_hot(answer, cues).float())
            keep = {k: nxt[k] for k in ("deter", "stoch", "hidden") if k in nxt}
            preds.append(model.decode(keep)["reward"].reshape(n))
        gaps.append(preds[0] - preds[1])
    gap = torch.stack(gaps)
    return float(gap.mean()), float((gap > 0).float().mean())


def ridge_accuracy(
    x: torch.Tensor, y: torch.Tensor, cues: int, fit: int, lam: float = 1e-2
) -> float:
    """Held-out accuracy of a one-vs-all ridge probe ``x (N, F) -> y (N,)`` fit on ``fit`` rows."""
    x = x.double()
    mean, std = x[:fit].mean(0), x[:fit].std(0) + 1e-6
    x = torch.cat([(x - mean) / std, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    target = torch.nn.functional.one_hot(y, cues).double() * 2 - 1
    a = x[:fit]
    w = torch.linalg.solve(
        a.T @ a + lam * fit * torch.eye(a.shape[1], dtype=x.dtype), a.T @ target[:fit]
    )
    return float(((x[fit:] @ w).argmax(-1) == y[fit:]).double().mean())


@torch.no_grad()
def lag_probes(model, eps: dict[str, torch.Tensor], cues: int, lags: int) -> dict[str, list]:
    """Linear-probe accuracy of the symbol ``k`` rows back, ``k = 0..lags``, per state part."""
    states = observe(model, eps)
    sym = eps["obs"][..., :cues].argmax(-1)
    n, t = sym.shape
    fit = n // 2  # the first half of the episodes fits, the second half tests
    out: dict[str, list] = {}
    for part in ("deter", "stoch", "hidden"):
        if part not in states:
            continue
        feat = states[part].flatten(2).float()
        accs = []
        for k in range(0, lags + 1):
            rows = range(max(k, 1), t)
            x = torch.cat([feat[:fit, r] for r in rows] + [feat[fit:, r] for r in rows])
            y = torch.cat([sym[:fit, r - k] for r in rows] + [sym[fit:, r - k] for r in rows])
            accs.append(round(ridge_accuracy(x, y, cues, fit * len(rows)), 3))
        out[part] = accs
    return out


def build(args: argparse.Namespace):
    # dotted keys (dynamics.dt_min=0.1) are config overrides as they stand
    overrides = {key: yaml.safe_load(value) for key, value in (i.split("=", 1) for i in args.set)}
    spec = {"kind": "discrete", "dim": args.cues, "num_actions": args.cues}
    return create_world_model(args.model, obs_shape=(args.cues + 1,), action_spec=spec, **overrides)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="ssm:ci")
    p.add_argument("--mode", default="repeat", choices=["repeat", "cycle"])
    p.add_argument("--delay", type=int, default=2)
    p.add_argument("--cues", type=int, default=2)
    p.add_argument("--ep-length", type=int, default=16)
    p.add_argument("--updates", type=int, default=1000)
    p.add_argument("--steps", type=int, default=4000, help="random-action training env steps")
    p.add_argument("--heldout", type=int, default=200, help="held-out episodes")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--every", type=int, default=250)
    p.add_argument("--lags", type=int, default=5)
    p.add_argument("--set", nargs="*", default=[], help="config overrides key=value (YAML)")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    replay = collect(args, args.steps, args.seed)
    test = episodes(
        collect(args, args.heldout * (args.ep_length + 1), 10_000 + args.seed), args.ep_length
    )
    model = build(args)
    print(
        f"{args.model}: {sum(q.numel() for q in model.parameters())} parameters, "
        f"{len(test['obs'])} held-out episodes, mode {args.mode} delay {args.delay}",
        flush=True,
    )
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    start = time.perf_counter()
    for step in range(0, args.updates + 1):
        if step % args.every == 0 or step == args.updates:
            model.eval()
            gap, acc = reward_gap(model, test, args.delay, args.cues)
            igap, iacc = imagined_gap(model, test, args.delay, args.cues)
            lags = lag_probes(model, test, args.cues, args.lags)
            model.train()
            print(
                f"update {step} ({time.perf_counter() - start:.0f} s) reward gap {gap:+.3f} "
                f"acc {acc:.3f} imagined {igap:+.3f} acc {iacc:.3f} | lag 0..{args.lags} probe: "
                + " ".join(f"{k} {v}" for k, v in lags.items()),
                flush=True,
            )
        if step == args.updates:
            break
        batch = {
            k: torch.as_tensor(np.asarray(v))
            for k, v in replay.sample(args.batch, args.length).items()
        }
        loss = wm_loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


if __name__ == "__main__":
    main()
