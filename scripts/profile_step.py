"""Profile one DreamerV3 update, one TD-MPC2 update or one TD-MPC2 MPPI planning step (CPU).

Runs the step once to warm up, then ``--repeats`` times under ``torch.profiler`` and prints where
the time goes: the top operators by self CPU time, and the same time grouped into matrix
multiplies, convolutions, element-wise / normalisation work, optimiser and the rest. The grouped
table is the one quoted in docs/speed.md.

Usage::

    python scripts/profile_step.py dreamerv3-update --size size12m --threads 1
    python scripts/profile_step.py tdmpc2-update --threads 1
    python scripts/profile_step.py tdmpc2-plan --threads 1
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from worldflux import get_config
from worldflux.training.setup import keep_freed_memory

#: Operator-name fragments of each group (first match wins; the order matters).
GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("matmul", ("mm", "matmul", "linear", "addmm", "bmm", "baddbmm", "gemm")),
    ("convolution", ("conv", "mkldnn_convolution", "slow_conv")),
    ("optimiser", ("_foreach", "adam", "laprop", "lerp")),
    ("normalisation", ("norm", "layer_norm", "group_norm")),
    (
        "element-wise",
        (
            "add",
            "mul",
            "sub",
            "div",
            "sigmoid",
            "tanh",
            "silu",
            "exp",
            "log",
            "softmax",
            "clamp",
            "where",
            "pow",
            "sqrt",
            "abs",
            "neg",
            "rsqrt",
            "erf",
            "gelu",
            "relu",
            "sign",
            "max",
            "min",
            "sum",
            "mean",
            "fill",
            "zero",
            "copy",
            "cat",
            "stack",
            "index",
            "gather",
            "scatter",
            "cumprod",
            "cumsum",
            "one_hot",
            "eq",
            "ne",
            "lt",
            "gt",
            "ge",
            "le",
            "argmax",
            "topk",
            "sort",
            "multinomial",
            "randn",
            "rand",
            "normal",
        ),
    ),
]


def group_of(name: str) -> str:
    low = name.lower()
    for group, keys in GROUPS:
        if any(k in low for k in keys):
            return group
    return "other"


def dreamerv3_update(size: str) -> Callable[[], None]:
    from worldflux.models.dreamerv3.module import DreamerV3

    torch.manual_seed(0)
    model = DreamerV3(get_config(f"dreamerv3:{size}"))
    opt = model.configure_optimizers()
    b, t = 16, 64
    config = model.config
    shape = config.modalities()["obs"]["shape"]
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    batch = {
        "obs": torch.randint(0, 256, (b, t, *shape), dtype=torch.uint8),
        "action": F.one_hot(torch.randint(0, config.action_dim, (b, t)), config.action_dim).float(),
        "reward": torch.randn(b, t),
        "first": first,
        "terminal": torch.zeros(b, t, dtype=torch.bool),
    }
    return lambda: model.train_update(batch, opt)


def _tdmpc2(obs_dim: int = 39, action_dim: int = 6):
    from worldflux import create_world_model

    torch.manual_seed(0)
    return create_world_model("tdmpc2:5m", obs_shape=(obs_dim,), action_dim=action_dim)


def tdmpc2_update() -> Callable[[], None]:
    model = _tdmpc2()
    opts = model.build_optimizers()
    b, t = 256, model.config.horizon + 1
    batch = {
        "obs": torch.randn(b, t, 39),
        "action": torch.rand(b, t, 6) * 2 - 1,
        "reward": torch.randn(b, t),
    }
    return lambda: model.update(batch, *opts)


def tdmpc2_plan() -> Callable[[], None]:
    model = _tdmpc2()
    obs = torch.randn(1, 39)
    state: dict = {"s": None}

    def step() -> None:
        _, state["s"] = model.act(obs, state["s"])

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=["dreamerv3-update", "tdmpc2-update", "tdmpc2-plan"])
    parser.add_argument("--size", default="size12m", help="DreamerV3 size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as `python -m worldflux.train` does
    if args.step == "dreamerv3-update":
        fn = dreamerv3_update(args.size)
    elif args.step == "tdmpc2-update":
        fn = tdmpc2_update()
    else:
        fn = tdmpc2_plan()
    fn()  # warm-up
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.repeats):
            fn()
    wall = (time.perf_counter() - start) / args.repeats
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(
        f"{args.step} ({args.size if 'dreamer' in args.step else 'tdmpc2:5m'}), "
        f"{args.threads} thread(s), torch {torch.__version__}: {wall:.3f} s per step "
        f"under the profiler, {args.repeats} repeats"
    )
    print(f"\n{'operator':<40} {'self s/step':>12} {'share':>7} {'calls/step':>11}")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.top]:
        print(
            f"{e.key[:40]:<40} {e.self_cpu_time_total / 1e6 / args.repeats:>12.3f} "
            f"{e.self_cpu_time_total / total:>7.1%} {e.count // args.repeats:>11}"
        )
    grouped: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for e in events:
        g = grouped[group_of(e.key)]
        g[0] += e.self_cpu_time_total
        g[1] += e.count
    print(f"\n{'group':<16} {'self s/step':>12} {'share':>7} {'calls/step':>11}")
    for name, (us, count) in sorted(grouped.items(), key=lambda kv: -kv[1][0]):
        print(
            f"{name:<16} {us / 1e6 / args.repeats:>12.3f} {us / total:>7.1%} "
            f"{count // args.repeats:>11}"
        )
    print(f"{'all':<16} {total / 1e6 / args.repeats:>12.3f}")


if __name__ == "__main__":
    main()
