"""Time one DreamerV3 training update (world model + actor-critic) on CPU and print a table.

One update = loss on a ``batch_size x batch_length`` batch of 64x64x3 uint8 images with 6
discrete actions (the official Atari-style setting), backward, LaProp step and slow-critic EMA.
Side by side on one machine, pinned to one core, the official JAX agent (danijar/dreamerv3 @
e3f0224) took 6.54 s (size1m) and 23.43 s (size12m) per update, worldflux 1.44 s and 8.94 s (the
README's Speed section; absolute times depend on the CPU, the ratio is the figure). The
``target s`` column is the first issue's targets, half the reference's loaded-machine 6.1 s and
25.0 s.

Usage::

    python scripts/bench_dreamerv3_update.py --sizes size1m size12m --threads 2 --repeats 3
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from worldflux import get_config
from worldflux.models.dreamerv3.module import DreamerV3
from worldflux.training.setup import keep_freed_memory

TARGETS = {"size1m": 3.0, "size12m": 12.5}


def make_batch(config, b: int, t: int) -> dict:
    """Random replay batch in the worldflux format for ``config``'s (image, discrete) spaces."""
    shape = config.modalities()["obs"]["shape"]
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    return {
        "obs": torch.randint(0, 256, (b, t, *shape), dtype=torch.uint8),
        "action": F.one_hot(torch.randint(0, config.action_dim, (b, t)), config.action_dim).float(),
        "reward": torch.randn(b, t),
        "first": first,
        "terminal": torch.zeros(b, t, dtype=torch.bool),
    }


def bench(size: str, b: int, t: int, repeats: int) -> tuple[float, float, int]:
    """``(best wall seconds, mean process CPU seconds, trainable parameters)`` of one update."""
    torch.manual_seed(0)
    model = DreamerV3(get_config(f"dreamerv3:{size}"))
    opt = model.configure_optimizers()
    batch = make_batch(model.config, b, t)
    model.train_update(batch, opt)  # warm-up (allocations, oneDNN primitive caches)
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        model.train_update(batch, opt)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), sum(cpus) / len(cpus), model.num_parameters()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["size1m", "size12m"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batch-length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--system-malloc",
        action="store_true",
        help="leave glibc's allocator settings alone (see keep_freed_memory)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    heap = False if args.system_malloc else keep_freed_memory()
    print(
        f"torch {torch.__version__}, {args.threads} threads, batch "
        f"{args.batch_size}x{args.batch_length}, fp32, heap-only malloc: {heap}"
    )
    print(f"{'preset':<10} {'params':>12} {'best wall s':>12} {'cpu s':>8} {'target s':>9}")
    for size in args.sizes:
        wall, cpu, params = bench(size, args.batch_size, args.batch_length, args.repeats)
        target = TARGETS.get(size)
        print(f"{size:<10} {params:>12,} {wall:>12.2f} {cpu:>8.2f} {target if target else '-':>9}")


if __name__ == "__main__":
    main()
