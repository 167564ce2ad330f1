"""Speed of R2I's S5 core: parallel scan vs step-by-step recurrence, and one training update.

    python scripts/bench_ssm.py                        # scan table, lengths 256..4096
    python scripts/bench_ssm.py --update ssm:ci --batch 4 --length 1024

The scan table times one S5 stack (``--units``, ``--state``, ``--layers``; default the ``mmaze``
widths 1024 / 512 / 5 with batch 1) forward over ``T`` steps with the associative scan and with
the one-step recurrence the imagination uses, and prints the scan's depth (``ceil(log2 T)``
combine levels) next to its time. ``--update`` times full training updates (model, actor and
critic phases) of a preset on random data of ``batch x length``.
"""

from __future__ import annotations

import argparse
import math
import time

import torch


def _time(fn, repeat: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def scan_table(
    units: int, state: int, layers: int, batch: int, lengths: list[int], max_recurrence: int
) -> None:
    """Print time per forward of the scan and of the recurrence for each length."""
    from worldflux.models.ssm.s5 import S5Stack

    torch.manual_seed(0)
    stack = S5Stack(units, state, layers, blocks=8 if state % 8 == 0 else 1)
    print(
        f"S5 stack: units {units}, state {state}, layers {layers}, batch {batch}, "
        f"{torch.get_num_threads()} threads"
    )
    print("| T | scan depth | scan ms | scan us/step | recurrence ms | speed-up |")
    print("|---|---|---|---|---|---|")
    for t in lengths:
        u = torch.randn(batch, t, units)
        x0 = torch.zeros(batch, layers, state, dtype=torch.complex64)
        reset = torch.zeros(batch, t)
        with torch.no_grad():
            scan = _time(lambda u=u, x0=x0, reset=reset: stack(u, x0, reset, x0), 3)

            def loop(u: torch.Tensor = u, h: torch.Tensor = x0, t: int = t) -> None:
                for i in range(t):
                    _, h = stack.step(u[:, i], h)

            rec = _time(loop, 1) if t <= max_recurrence else float("nan")
        print(
            f"| {t} | {math.ceil(math.log2(t))} | {scan * 1e3:.1f} | {scan / t * 1e6:.1f} | "
            f"{rec * 1e3:.1f} | {rec / scan:.1f}x |"
        )


def update_time(preset: str, batch: int, length: int, repeat: int) -> None:
    """Print seconds per training update of ``preset`` on random ``batch x length`` data."""
    import torch.nn.functional as F

    from worldflux import create_world_model

    model = create_world_model(preset, batch_size=batch, batch_length=length)
    c = model.config
    shape = (batch, length, *c.obs_shape)
    image = len(c.obs_shape) == 3
    obs = torch.randint(0, 256, shape, dtype=torch.uint8) if image else torch.randn(shape)
    first = torch.zeros(batch, length, dtype=torch.bool)
    first[:, 0] = True
    data = {
        "obs": obs,
        "action": F.one_hot(torch.randint(0, c.action_dim, (batch, length)), c.action_dim).float(),
        "reward": torch.randn(batch, length),
        "first": first,
        "terminal": torch.zeros(batch, length, dtype=torch.bool),
    }
    opts = model.configure_optimizers()
    names = [p.name for p in model.schedule.phases]
    seconds = _time(lambda: model.run_update(dict.fromkeys(names, data), opts), repeat)
    print(
        f"{preset}: {model.num_parameters():,} params, batch {batch} x {length}: "
        f"{seconds:.2f} s per update ({torch.get_num_threads()} threads)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=1024)
    parser.add_argument("--state", type=int, default=512)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--max-recurrence", type=int, default=4096, help="skip longer loops")
    parser.add_argument("--update", default=None, help="preset to time full updates of")
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if args.update:
        update_time(args.update, args.batch, args.length, args.repeat)
    else:
        scan_table(
            args.units, args.state, args.layers, args.batch, args.lengths, args.max_recurrence
        )


if __name__ == "__main__":
    main()
