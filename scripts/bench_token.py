"""Speed of worldflux's IRIS (family ``token``): imagination with the key-value cache, and one
training update of each phase; with ``--official``, the official code's imagination on the same
CPU, same threads, in the same run.

Usage::

    python scripts/bench_token.py [--official /tmp/iris] [--batch 8] [--steps 5] [--threads 1]

One imagination step is what the actor-critic's loss does per horizon step: an action token and
the 16 tokens of the next frame through the GPT (17 cached passes) plus decoding the frame. The
official code is imported as in ``scripts/compare_token_official.py`` (stand-ins for modules it
imports but does not use here). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
import torch.nn.functional as F


def _timed(fn: Any, repeat: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--official", default=None, help="root of the eloialonso/iris checkout")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="imagined steps per timing")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from worldflux import create_world_model
    from worldflux.models.token.imagination import TokenEnv
    from worldflux.models.token.weights import official_to_ours

    ours = create_world_model("token:base", action_dim=4).eval()
    b = args.batch
    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (b, 3, 64, 64), generator=gen, dtype=torch.uint8)
    acts = torch.randint(0, 4, (args.steps, b), generator=gen)
    rows = []

    @torch.no_grad()
    def ours_imagine() -> None:
        env = TokenEnv(ours.tokenizer, ours.world_model, ours.encode(frames))
        for a in acts:
            env.step(a)
            env.frame()

    t = _timed(ours_imagine, 1)
    rows.append(("worldflux: imagination (KV cache)", f"{args.steps * b / t:.1f} steps/s"))
    if args.official:
        import sys

        sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
        import compare_token_official as cmp

        off = cmp.import_official(args.official)
        agent = cmp.build_official(off, 4).eval()
        ours.load_state_dict(official_to_ours(agent.state_dict()), strict=False)
        from envs.world_model_env import WorldModelEnv

        @torch.no_grad()
        def official_imagine() -> None:
            env = WorldModelEnv(agent.tokenizer, agent.world_model, "cpu")
            env.reset_from_initial_observations(frames.float() / 255)
            for a in acts:
                env.step(a)

        t = _timed(official_imagine, 1)
        rows.append(("official: imagination (KV cache)", f"{args.steps * b / t:.1f} steps/s"))

    ours.train()
    obs = torch.randint(0, 256, (b, 21, 3, 64, 64), generator=gen, dtype=torch.uint8)
    first = torch.zeros(b, 21, dtype=torch.bool)
    first[:, 0] = True
    batch = {
        "obs": obs,
        "action": F.one_hot(torch.randint(0, 4, (b, 21), generator=gen), 4).float(),
        "reward": torch.zeros(b, 21),
        "first": first,
        "terminal": torch.zeros(b, 21, dtype=torch.bool),
    }
    for phase in ("tokenizer", "world_model", "actor_critic"):

        def update(name: str = phase) -> None:
            ours.zero_grad(set_to_none=True)
            data = {"obs": obs[:, :1]} if name == "tokenizer" else batch  # single frames
            ours.phase_loss(name, data, {}).total.backward()

        t = _timed(update, 1)
        rows.append(
            (f"worldflux: one {phase} update (batch {b}), forward + backward", f"{t:.2f} s")
        )
    print(f"\nthreads={args.threads}, batch={b}, 64x64x3, 4 actions\n")
    print("| measurement | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
