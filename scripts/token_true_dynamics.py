"""Diagnostic: IRIS's actor-critic trained in the true Catch dynamics instead of imagination.

The model's own ``actor_critic`` phase runs unchanged (burn-in on ``burn_in`` real frames, a
``imagine_horizon``-step rollout, lambda-returns, REINFORCE with the value baseline, the value
and entropy losses, its Adam optimiser and clipping), except that (a) the imagined steps are
taken by copies of the real Catch environment instead of the GPT (``Token.imagination_env``) and
(b) the tokenizer is the identity, so the actor reads the true frames. A perfect world model:
whatever the actor-critic fails to learn here, it cannot learn in imagination with the same
number of updates. Start states come from ``--batch`` Catch environments played by a uniformly
random policy (as the replay buffer's); the policy is evaluated on held-out episodes (seeds from
10,000, evaluation mode: temperature 0.5) against uniformly random actions on the same episodes.

With ``--imagine CHECKPOINT`` the same loop instead continues the actor-critic of a trained
``token`` checkpoint in that checkpoint's own (frozen) tokenizer and world model, i.e. the slow
test's imagination: it tells whether more actor-critic updates would be enough there.
``--fresh-actor`` re-initialises that actor-critic first. Each evaluation also prints how often
the actor takes each action (left / stay / right) on the held-out episodes.

Usage (the slow test's actor-critic settings are the defaults)::

    python scripts/token_true_dynamics.py --updates 2000 --eval-every 250 --episodes 50
    python scripts/token_true_dynamics.py --imagine last.ckpt --updates 600 --eval-every 200
    python scripts/token_true_dynamics.py --updates 1000 'ac_channels=[32,32,64,64]' lstm_dim=512

``key=value`` arguments override ``token:ci`` fields (with ``--imagine``: the actor-critic is
then built fresh at that setting beside the checkpoint's tokenizer and world model).

Prints one Markdown table row per evaluation (docs/learning.md, token section).
"""

from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import time
from types import SimpleNamespace

import numpy as np
import torch
from torch import Tensor, nn

from worldflux import create_world_model
from worldflux.envs.embedded import Catch
from worldflux.models.token.evaluate import catch_return

GEO = {"size": 16, "rows": 4, "cols": 4}


def frame(obs: dict[str, np.ndarray]) -> np.ndarray:
    return next(iter(obs.values()))


class PerfectTokenizer(nn.Module):
    """The identity in place of the VQ-VAE: "reconstructions" are the true frames."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(1, 1)  # the model reads its device from here

    def encode(self, x: Tensor) -> SimpleNamespace:
        return SimpleNamespace(z_q=x, tokens=torch.zeros(x.shape[:-3] + (16,), dtype=torch.long))

    def decode(self, z_q: Tensor) -> Tensor:
        return z_q


class Collector:
    """A Catch environment played by a random policy; keeps its last ``length`` steps."""

    def __init__(self, seed: int, length: int, rng: np.random.Generator) -> None:
        self.env, self.rng, self.length = Catch(seed=seed, **GEO), rng, length
        self.obs, self.first = [frame(self.env.reset())], [True]

    def advance(self, steps: int) -> None:
        for _ in range(steps):
            a = int(self.rng.integers(3))
            o, _, done, _ = self.env.step(np.eye(3, dtype=np.float32)[a])
            self.obs.append(frame(self.env.reset() if done else o))
            self.first.append(done)
        self.obs, self.first = self.obs[-self.length :], self.first[-self.length :]


class TrueCatch:
    """Stands in for :class:`~worldflux.models.token.imagination.TokenEnv`: steps copies of the
    collectors' environments; the frame is the true one in ``[0, 1]``."""

    def __init__(self, sims: list[Catch]) -> None:
        self.sims = sims
        self.tokens = torch.zeros(len(sims), 16, dtype=torch.long)
        self._frames = [frame(s._observe()) for s in sims]

    def frame(self) -> Tensor:
        return torch.as_tensor(np.stack(self._frames)).float() / 255.0

    def step(self, action: Tensor, predict_next: bool = True) -> tuple[Tensor, Tensor]:
        rew, end = [], []
        for i, (sim, a) in enumerate(zip(self.sims, action.tolist())):
            o, r, done, _ = sim.step(np.eye(3, dtype=np.float32)[a])
            self._frames[i] = frame(sim.reset() if done else o)
            rew.append(r)
            end.append(done)
        return torch.tensor(rew), torch.tensor(end)


@torch.no_grad()
def action_shares(model: object, episodes: int, seed: int = 10_000) -> np.ndarray:
    """How often the model's actor (evaluation mode) takes each action on the held-out
    episodes of :func:`catch_return` (the draws differ from that function's)."""
    was_training = model.training  # type: ignore[attr-defined]
    model.eval()  # type: ignore[attr-defined]
    counts = np.zeros(3)
    for i in range(episodes):
        env = Catch(seed=seed + i, **GEO)
        obs, state, done = frame(env.reset()), None, False
        while not done:
            act, state = model.act(torch.as_tensor(obs)[None], state, eval_mode=True)  # type: ignore[attr-defined]
            counts[int(act[0].argmax())] += 1
            o, _, done, _ = env.step(act[0].numpy())
            obs = frame(o)
    model.train(was_training)  # type: ignore[attr-defined]
    return counts / counts.sum()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--updates", type=int, default=2000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--horizon", type=int, default=8)
    p.add_argument("--burn-in", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--entropy", type=float, default=0.001)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--imagine", help="a token checkpoint: train in its world model instead")
    p.add_argument(
        "--fresh-actor",
        action="store_true",
        help="with --imagine: re-initialise the checkpoint's actor-critic before training",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        help="token:ci fields, key=value (e.g. IRIS's actor-critic width: "
        "'ac_channels=[32,32,64,64]' lstm_dim=512); with --imagine the actor-critic is then "
        "built fresh at that setting beside the checkpoint's tokenizer and world model",
    )
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    over = {k: ast.literal_eval(v) for k, v in (o.split("=", 1) for o in args.overrides)}
    settings = {
        "lr": args.lr,
        "imagine_horizon": args.horizon,
        "entropy_weight": args.entropy,
        "ac_batch_size": args.batch,
        "burn_in": args.burn_in,
    }
    if args.imagine and over:
        src = create_world_model(args.imagine)
        model = type(src)(dataclasses.replace(src.config, **settings, **over))
        model.tokenizer.load_state_dict(src.tokenizer.state_dict())
        model.world_model.load_state_dict(src.world_model.state_dict())
    else:
        model = create_world_model(args.imagine or "token:ci", action_dim=3, **settings, **over)
    if not args.imagine:
        model.tokenizer = PerfectTokenizer()
    elif args.fresh_actor:
        for module in model.actor_critic.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    opts = model.configure_optimizers()
    length = args.burn_in + 1
    collectors = [Collector(i, length, rng) for i in range(args.batch)]
    for c in collectors:
        c.advance(int(rng.integers(length, 24)))
    rand, rand_se = catch_return(None, args.episodes, **GEO)
    print(f"random policy, {args.episodes} held-out episodes: {rand:.2f} +- {rand_se:.2f}")
    print(
        "| updates | wall s | entropy (max 1.10) | imagined reward per step | return (SE) "
        "| eval actions left / stay / right |"
    )
    print("|---|---|---|---|---|---|")
    start, ent, imag = time.time(), [], []
    for u in range(1, args.updates + 1):
        sims = [copy.deepcopy(c.env) for c in collectors]
        if not args.imagine:
            model.imagination_env = lambda _start, sims=sims: TrueCatch(sims)
        batch = {
            "obs": torch.as_tensor(np.stack([np.stack(c.obs) for c in collectors])),
            "first": torch.tensor([c.first for c in collectors]),
        }
        metrics, _ = model.run_update({"actor_critic": batch}, opts, log=False)
        ent.append(-float(metrics["loss/entropy"]) / args.entropy)
        imag.append(float(metrics["actor_critic/imagined_reward"]))
        for c in collectors:
            c.advance(int(rng.integers(1, 4)))
        if u % args.eval_every == 0 or u == args.updates:
            ret, se = catch_return(model, args.episodes, **GEO)
            shares = " / ".join(f"{v:.2f}" for v in action_shares(model, args.episodes))
            w = args.eval_every
            print(
                f"| {u} | {time.time() - start:.0f} | {np.mean(ent[-w:]):.3f} | "
                f"{np.mean(imag[-w:]):.3f} | {ret:.2f} ({se:.2f}) | {shares} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
