"""TD-MPC2 5m, side by side with the official code in one process: one update, one MPPI step.

Both run on the same weights (the official ``WorldModel``, saved and loaded into ``tdmpc2:5m`` as
``scripts/compare_tdmpc2_official.py`` does), the same batch and the same thread count, and the
two are interleaved (official, ours, official, ours, ...) so that a loaded machine slows both
alike. The official methods (``TDMPC2._update``, ``TDMPC2._plan``) run unchanged on the CPU
stand-in of the comparison script, without ``torch.compile`` (CPU). Prints the median and best
seconds per step of each and the ratio (official / ours) of the medians.

Usage::

    git --git-dir=<mirror of nicklashansen/tdmpc2> archive e9f59321933cbc8e11a002b842adc7d4ffae8ff1 \\
        | tar -x -C /tmp/tdmpc2_official
    pip install tensordict -c constraints-cpu.txt     # the official world model needs it
    python scripts/bench_tdmpc2_versus_official.py --official /tmp/tdmpc2_official --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_tdmpc2_official import (  # noqa: E402  (the sibling script's official-code driver)
    import_official,
    official_agent,
    official_cfg,
    official_file,
    ours_for,
    settings,
)

from worldflux.training.setup import keep_freed_memory  # noqa: E402


def interleave(fns: dict[str, Callable[[], None]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each call of each function, calls interleaved, after one warm-up call each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official", required=True, help="checkout of nicklashansen/tdmpc2 @ e9f5932")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    heap = keep_freed_memory()  # as `python -m worldflux.train` does; applies to both codes
    off = import_official(args.official)
    setting = settings(["5m"])["5m"]
    cfg = official_cfg(off, setting, args.batch)
    torch.manual_seed(0)
    wm = off.WorldModel(cfg)
    with tempfile.TemporaryDirectory() as folder:
        ours = ours_for(setting, official_file(wm, folder))
    agent = official_agent(off, cfg, wm)

    b, h, obs_dim, a_dim = args.batch, cfg.horizon, setting["obs"], setting["action_dim"]
    g = torch.Generator().manual_seed(2)
    obs = torch.randn(b, h + 1, obs_dim, generator=g)
    action = torch.rand(b, h + 1, a_dim, generator=g) * 2 - 1
    reward = torch.randn(b, h + 1, generator=g)
    batch = {"obs": obs, "action": action, "reward": reward}
    o_obs = obs.transpose(0, 1).contiguous()
    o_act = action[:, 1:].transpose(0, 1).contiguous()
    o_rew = reward[:, 1:].transpose(0, 1).unsqueeze(-1).contiguous()
    o_term = torch.zeros_like(o_rew)
    model_opt, pi_opt = ours.build_optimizers()
    ours.train()
    agent.model.train()
    one = torch.randn(1, obs_dim, generator=g)
    state: dict = {"s": None}

    def ours_plan() -> None:
        _, state["s"] = ours.act(one, state["s"])

    rows = [
        (
            f"update (batch {b}, horizon {h})",
            interleave(
                {
                    "official": lambda: agent._update(o_obs, o_act, o_rew, o_term),
                    "worldflux": lambda: ours.update(batch, model_opt, pi_opt),
                },
                args.repeats,
            ),
        ),
        (
            f"MPPI planning step ({cfg.num_samples} samples x {cfg.iterations} iterations)",
            interleave(
                {
                    "official": lambda: agent._plan(one, t0=False, eval_mode=False),
                    "worldflux": ours_plan,
                },
                args.repeats,
            ),
        ),
    ]
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {args.repeats} interleaved repeats, "
        f"heap-only malloc: {heap}"
    )
    print("| step | official median s (best) | worldflux median s (best) | ratio |")
    print("|---|---|---|---|")
    for name, t in rows:
        mo, mw = statistics.median(t["official"]), statistics.median(t["worldflux"])
        print(
            f"| {name} | {mo:.3f} ({min(t['official']):.3f}) | {mw:.3f} ({min(t['worldflux']):.3f}) "
            f"| {mo / mw:.2f}x |"
        )


if __name__ == "__main__":
    main()
