"""Diagnostic: DIAMOND's actor-critic trained in the true Catch dynamics instead of imagination.

The model's own ``actor_critic`` phase runs unchanged (burn-in on 4 real frames, a
``--horizon``-step rollout, lambda-returns, the reference's actor, value and entropy losses,
its AdamW optimiser), except that each imagined step is taken by a copy of the real Catch
environment instead of the denoiser and the reward/termination model. A perfect world model:
whatever the actor-critic fails to learn here, it cannot learn in imagination at the same number
of updates. Initial conditions come from ``--batch`` Catch environments played by a uniformly
random policy (as the replay buffer's prefill); the policy is evaluated on held-out episodes.

``--actor`` swaps the actor-critic network for a diagnostic one with the same interface that
reads the ball's row and column and the paddle's column from the frame (one-hot, 18 values):
``oracle-mlp`` puts one SiLU layer of ``--width`` units before the policy and value heads,
``oracle-lstm`` an ``LSTMCell`` of ``--width`` units with DIAMOND's initialisation (the model's
recurrent core without its CNN). The loss, returns and optimiser stay the model's.

``--world-model CKPT`` is the control: the same loop, but each imagined step is taken by the
denoiser and the reward/termination model of a trained checkpoint (``last.ckpt`` of a
``worldflux.train`` run), as in training, with a freshly initialised actor-critic.

``--world-model CKPT --reward-bias`` trains nothing: from ``--batch`` real contexts it holds
each action for ``--horizon`` steps in the checkpoint's world model (rewards and ends sampled as
in training) and in copies of the real environments, and prints the imagined and the true
rewards per rollout side by side. A world model whose imagined rewards depend on the action
where the true ones do not invites the actor-critic to exploit it (docs/learning.md).
``--sampler`` and ``--denoising-steps`` set the imagination's sampler (default: the preset's,
DIAMOND's 3-step Euler), as ``model.sampler`` and ``model.num_steps_denoising`` do in training.

Usage::

    python scripts/diffusion_true_dynamics.py --updates 2400 --batch 64 --horizon 8 \
        --lr 3e-3 --entropy 0.01 --eval-every 400 --episodes 50

Prints one Markdown table row per evaluation (docs/learning.md, diffusion section).
"""

from __future__ import annotations

import argparse
import copy
import time
from typing import Any

import numpy as np
import torch

from worldflux import create_world_model
from worldflux.envs.embedded import Catch
from worldflux.models.diffusion import frames as fr
from worldflux.models.diffusion.blocks import init_lstm

CONTEXT = 4  # diffusion:ci conditions on 4 frames


def frame(obs: dict[str, np.ndarray]) -> np.ndarray:
    return next(iter(obs.values()))


class Collector:
    """A Catch environment played by a random policy; keeps its last ``CONTEXT`` steps."""

    def __init__(self, seed: int, rng: np.random.Generator) -> None:
        self.env, self.rng = Catch(size=16, seed=seed), rng
        self.obs, self.act, self.first = [frame(self.env.reset())], [0], [True]

    def advance(self, steps: int) -> None:
        for _ in range(steps):
            a = int(self.rng.integers(3))
            o, _, done, _ = self.env.step(np.eye(3, dtype=np.float32)[a])
            self.obs.append(frame(self.env.reset() if done else o))
            self.act.append(a)
            self.first.append(done)
        self.obs, self.act, self.first = (x[-CONTEXT:] for x in (self.obs, self.act, self.first))


def context_batch(collectors: list[Collector]) -> dict[str, torch.Tensor]:
    """The collectors' last ``CONTEXT`` steps in the worldflux batch format."""
    obs = torch.as_tensor(np.stack([np.stack(c.obs) for c in collectors]))
    act = torch.nn.functional.one_hot(torch.tensor([c.act for c in collectors]), 3).float()
    first = torch.tensor([c.first for c in collectors])
    first[:, 0] = True
    return {"obs": obs, "action": act, "first": first}


class TrueCatch:
    """Stands in for the model's world-model environment step (``Diffusion._env_step``)."""

    def __init__(self, sims: list[Catch]) -> None:
        self.sims = sims

    def step(
        self, state: dict[str, torch.Tensor], action: torch.Tensor, rew_hc: Any, *_: Any, **__: Any
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, Any]:
        nxt, rew, end = [], [], []
        for sim, a in zip(self.sims, action.tolist()):
            o, r, done, _ = sim.step(np.eye(3, dtype=np.float32)[a])
            nxt.append(frame(sim.reset() if done else o))
            rew.append(r)
            end.append(int(done))
        frames = state["frames"]
        x = fr.to_model_frames(torch.as_tensor(np.stack(nxt)), (3, 16, 16), 1, frames.device)
        acts = state["actions"].clone()
        acts[:, -1] = action
        new = {
            "frames": torch.cat([frames[:, 1:], x[:, None]], 1),
            "actions": torch.cat([acts[:, 1:], torch.zeros_like(acts[:, :1])], 1),
        }
        return new, x, torch.tensor(rew), torch.tensor(end), rew_hc


#: Catch at 16x16: grid rows 0..7 start at even pixel rows; columns 0..4 start at these pixels.
ROW_PIXELS = list(range(0, 16, 2))
COL_PIXELS = [0, 4, 7, 10, 13]


def oracle_features(obs: torch.Tensor) -> torch.Tensor:
    """``obs (B, 3, 16, 16)`` in ``[-1, 1]`` -> one-hot ball row (8, zeros when no ball), ball
    column (5) and paddle column (5): ``(B, 18)``."""
    ball = (obs[:, 0] > 0) & (obs[:, 1] < 0)  # red (255, 80, 40); the paddle is (60, 200, 255)
    cells = ball[:, ROW_PIXELS][:, :, COL_PIXELS]  # (B, 8, 5)
    row = torch.nn.functional.one_hot(cells.any(2).float().argmax(1), 8).float()
    row = row * cells.flatten(1).any(1, keepdim=True)
    paddle = (obs[:, 2, 15] > 0.9)[:, COL_PIXELS]
    return torch.cat([row, cells.any(1).float(), paddle.float()], 1)


class OracleActorCritic(torch.nn.Module):
    """The actor-critic's interface (``(obs, (h, c)) -> (logits, value, (h, c))``) on
    :func:`oracle_features`, through one SiLU layer (``lstm=False``) or an ``LSTMCell``."""

    def __init__(self, width: int, lstm: bool) -> None:
        super().__init__()
        self.lstm_dim = width
        if lstm:
            self.core: torch.nn.Module = torch.nn.LSTMCell(18, width)
            init_lstm(self.core)
        else:
            self.core = torch.nn.Sequential(torch.nn.Linear(18, width), torch.nn.SiLU())
        self.actor_linear = torch.nn.Linear(width, 3)
        self.critic_linear = torch.nn.Linear(width, 1)
        for lin in (self.actor_linear, self.critic_linear):
            torch.nn.init.zeros_(lin.weight)
            torch.nn.init.zeros_(lin.bias)

    def forward(self, obs: torch.Tensor, hx_cx: Any) -> tuple[torch.Tensor, torch.Tensor, Any]:
        x = oracle_features(obs)
        if isinstance(self.core, torch.nn.LSTMCell):
            hx_cx = self.core(x, hx_cx)
            h = hx_cx[0]
        else:
            h = self.core(x)
        return self.actor_linear(h), self.critic_linear(h).squeeze(1), hx_cx


def evaluate(model: Any, episodes: int, seed: int = 777) -> float:
    env, returns = Catch(size=16, seed=seed), []
    for _ in range(episodes):
        obs, state, done, total = env.reset(), None, False, 0.0
        while not done:
            a, state = model.act(torch.as_tensor(frame(obs))[None], state, eval_mode=True)
            obs, r, done, _ = env.step(a[0].numpy())
            total += r
        returns.append(total)
    return float(np.mean(returns))


@torch.no_grad()
def reward_bias(model: Any, collectors: list[Collector], horizon: int) -> None:
    """Print imagined against true reward rates per constant action (``--reward-bias``)."""
    batch = context_batch(collectors)
    print("| action | imagined return | imagined -1 / +1 per step | true return | true -1 / +1 |")
    print("|---|---|---|---|---|")
    for a in range(3):
        act = torch.full((len(collectors),), a)
        state = model.context_state(batch)
        true_state, rew_hc = copy.deepcopy(state), model._burn_in_rew_end(state)
        true = TrueCatch([copy.deepcopy(c.env) for c in collectors])
        settings, alive, rews, true_rews = model.sampler_settings(), None, [], []
        for _ in range(horizon):
            state, _, rew, end, rew_hc = model._env_step(state, act, rew_hc, settings)
            true_state, _, true_rew, true_end, _ = true.step(true_state, act, None)
            alive = torch.ones_like(true_end, dtype=torch.bool) if alive is None else alive
            rews.append(rew * alive), true_rews.append(true_rew * alive)
            alive = alive & (true_end == 0)  # both stop where the real episode ends
        r, t = torch.stack(rews), torch.stack(true_rews).float()
        print(
            f"| {a} | {r.sum(0).mean():+.2f} | {(r < 0).float().mean():.3f} / "
            f"{(r > 0).float().mean():.3f} | {t.sum(0).mean():+.2f} | "
            f"{(t < 0).float().mean():.3f} / {(t > 0).float().mean():.3f} |"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="diffusion:ci")
    p.add_argument("--updates", type=int, default=2400)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--horizon", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--entropy", type=float, default=0.01)
    p.add_argument("--eval-every", type=int, default=400)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--actor", choices=["model", "oracle-mlp", "oracle-lstm"], default="model")
    p.add_argument("--width", type=int, default=64, help="oracle actors' hidden width")
    p.add_argument("--lstm-dim", type=int, default=None, help="the model actor-critic's LSTM width")
    p.add_argument("--world-model", default=None, help="imagine with this checkpoint's world model")
    p.add_argument(
        "--reward-bias", action="store_true", help="with --world-model: rewards per action"
    )
    p.add_argument("--sampler", choices=["euler", "heun"], default=None, help="imagination sampler")
    p.add_argument("--denoising-steps", type=int, default=None, help="sampler steps per frame")
    args = p.parse_args()
    if args.denoising_steps is not None and args.denoising_steps < 1:
        p.error(f"--denoising-steps must be >= 1, got {args.denoising_steps}")
    if args.reward_bias and not args.world_model:
        p.error("--reward-bias needs --world-model CKPT")
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(0)
    model = create_world_model(
        args.preset,
        action_dim=3,
        lr=args.lr,
        horizon=args.horizon,
        weight_entropy_loss=args.entropy,
        **({"actor_critic": {"lstm_dim": args.lstm_dim}} if args.lstm_dim else {}),
        **({"sampler": args.sampler} if args.sampler else {}),
        **({"num_steps_denoising": args.denoising_steps} if args.denoising_steps else {}),
    )
    if args.actor != "model":
        model.actor_critic = OracleActorCritic(args.width, lstm=args.actor == "oracle-lstm")
    if args.world_model:
        trained = create_world_model(args.world_model)
        # the checkpoint's own modules, so that its widths may differ from the preset's
        model.denoiser, model.rew_end_model = trained.denoiser, trained.rew_end_model
    else:
        model._burn_in_rew_end = lambda state: None  # no reward model: the true rewards
    opts = model.configure_optimizers()
    collectors = [Collector(i, rng) for i in range(args.batch)]
    for c in collectors:
        c.advance(int(rng.integers(CONTEXT, 28)))
    if args.reward_bias:
        model.eval()
        reward_bias(model, collectors, args.horizon)
        return
    print("| updates | wall s | entropy (max 1.10) | imagined return | real return |")
    print("|---|---|---|---|---|")
    start, ent, imag = time.time(), [], []
    for u in range(1, args.updates + 1):
        if not args.world_model:
            model._env_step = TrueCatch([copy.deepcopy(c.env) for c in collectors]).step
        metrics, _ = model.run_update({"actor_critic": context_batch(collectors)}, opts, log=False)
        ent.append(-float(metrics["loss/entropy"]) / args.entropy)
        imag.append(float(metrics["actor_critic/imagined_return"]))
        for c in collectors:
            c.advance(int(rng.integers(1, 4)))
        if u % args.eval_every == 0 or u == args.updates:
            real = evaluate(model, args.episodes)
            w = args.eval_every
            print(
                f"| {u} | {time.time() - start:.0f} | {np.mean(ent[-w:]):.3f} | "
                f"{np.mean(imag[-w:]):.3f} | {real:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
