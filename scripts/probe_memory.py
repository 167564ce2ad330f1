"""Probe a world model on the Memory task: does the reward head tie the reward to (cue, answer)?

World model only (no actor): random-action episodes of ``worldflux.envs.memory.Memory`` go
through the real collector and replay, the family's world-model loss is minimised with Adam for
``--updates`` steps, then hand-made episodes (cue ``c``, ``delay`` blanks, query, answer ``a``)
are filtered through ``model.observe`` and the predicted reward at the answer step is printed
for every ``(c, a)``. A model that learned the task predicts +1 where ``a == c`` and -1 elsewhere.

Usage::

    python scripts/probe_memory.py --model ssm:ci --delay 0 --updates 300
    python scripts/probe_memory.py --model runs/x/checkpoints/last.ckpt --delay 2 --updates 0

With ``--updates 0`` a trained model (a checkpoint) is only probed. ``--set`` passes config
overrides such as ``dynamics.dt_max=1.0``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from worldflux import create_world_model
from worldflux.data.replay import Replay
from worldflux.envs.registry import make_vector_env
from worldflux.training.collector import Collector


def collect(delay: int, steps: int, seed: int) -> Replay:
    """A replay of ``steps`` random-action steps of Memory (vector observations, 2 cues)."""
    cfg = {"suite": "embedded", "id": "memory", "delay": delay, "cues": 2, "num_envs": 1}
    envs = make_vector_env(cfg, seed=seed)
    replay = Replay(envs.spec, steps + 10, envs.num_envs, seed=seed)
    col = Collector(envs, replay, seed=seed)
    for _ in range(steps):
        col.step(None)
    return replay


def wm_loss(model, batch) -> torch.Tensor:
    """The family's world-model loss alone (no actor-critic terms)."""
    name = type(model).__name__
    if name == "SSM":
        return model.phase_loss("model", batch, {}).total
    from worldflux.models.dreamerv3.losses import total_loss, world_model_losses

    obs, action, reward, first, terminal, _ = model._unpack(batch)
    state = model.dynamics.initial(first.shape[0], first.device)
    losses, *_ = world_model_losses(model, obs, action, reward, first, terminal, state)
    losses = {k: v for k, v in losses.items() if not k.startswith(("policy", "value", "repval"))}
    return total_loss(model, losses)[0]


def episode(cue: int, answer: int, delay: int, cues: int = 2) -> dict[str, torch.Tensor]:
    """One hand-made episode in the replay's convention (action = the action that led here)."""
    t = delay + 3
    obs = np.zeros((1, t, cues + 1), np.float32)
    obs[0, 0, cue] = 1.0
    obs[0, delay + 1, -1] = 1.0
    action = np.zeros((1, t, cues), np.float32)
    action[0, 1:, 0] = 1.0  # arbitrary actions during the delay
    action[0, -1] = 0.0
    action[0, -1, answer] = 1.0
    first = np.zeros((1, t), bool)
    first[0, 0] = True
    return {
        "obs": torch.as_tensor(obs),
        "action": torch.as_tensor(action),
        "first": torch.as_tensor(first),
    }


@torch.no_grad()
def reward_table(model, delay: int) -> np.ndarray:
    """Predicted reward at the answer step for every ``(cue, answer)`` (rows: cue)."""
    out = np.zeros((2, 2))
    for c in range(2):
        for a in range(2):
            ep = episode(c, a, delay)
            states, _ = model.observe(ep["obs"], ep["action"], ep["first"])
            rew = model.decode({k: states[k] for k in ("deter", "stoch", "hidden") if k in states})
            out[c, a] = float(rew["reward"][0, -1])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="ssm:ci")
    p.add_argument("--delay", type=int, default=0)
    p.add_argument("--updates", type=int, default=300)
    p.add_argument("--steps", type=int, default=2000, help="random-action env steps")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--every", type=int, default=100)
    p.add_argument(
        "--set", nargs="*", default=[], help="config overrides key=value (value read as YAML)"
    )
    args = p.parse_args()
    torch.manual_seed(args.seed)
    if args.updates == 0:  # probe a trained model only
        model = create_world_model(args.model).eval()
        table = reward_table(model, args.delay)
        print(f"reward[cue,answer] = {np.round(table, 3).tolist()}")
        return
    replay = collect(args.delay, args.steps, args.seed)
    import yaml

    # dotted keys (dynamics.dt_min=0.1) are config overrides as they stand
    overrides = {key: yaml.safe_load(value) for key, value in (i.split("=", 1) for i in args.set)}
    model = create_world_model(
        args.model,
        obs_shape=(3,),
        action_spec={"kind": "discrete", "dim": 2, "num_actions": 2},
        **overrides,
    )
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    start = time.perf_counter()
    for step in range(1, args.updates + 1):
        batch = {
            k: torch.as_tensor(np.asarray(v))
            for k, v in replay.sample(args.batch, args.length).items()
        }
        loss = wm_loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % args.every == 0 or step == args.updates:
            model.eval()
            table = reward_table(model, args.delay)
            model.train()
            print(
                f"update {step} loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s) "
                f"reward[cue,answer] = {np.round(table, 3).tolist()}",
                flush=True,
            )


if __name__ == "__main__":
    main()
