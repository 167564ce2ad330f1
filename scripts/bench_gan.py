"""Speed of worldflux's GameGAN against the official code on the same CPU, in one run.

Usage::

    python scripts/bench_gan.py [--official /tmp/gamegan] [--setting base] [--small] [--batch 2]
        [--profile 15]

Measures generated frames per second (an open-loop generator unroll, no gradients) and the time
of one generator + discriminator update (forward, backward, both optimiser steps), for ours and,
with ``--official`` (a checkout of nv-tlabs/GameGAN_code @ 1195c39), for the reference built
from the same options with the same weights. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_gan_official import SETTINGS, SMALL, FixedNoise, build_official, inputs  # noqa: E402

from worldflux.models.gan.weights import from_reference  # noqa: E402


def timed(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official", default=None)
    p.add_argument("--setting", default="base", choices=list(SETTINGS))
    p.add_argument("--small", action="store_true", help="the comparison script's small widths")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--profile", type=int, default=0, help="print the top N ops of one more update (profiler)"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from compare_gan_official import ours_for

    preset, ref_args, overrides, t = SETTINGS[args.setting]
    ref_args, overrides = list(ref_args), dict(overrides)
    if args.small:
        ref_args += SMALL[0]
        overrides.update(SMALL[1])
    warm_up, a = 4, 10
    ours = ours_for(preset, overrides, t, warm_up)
    data = inputs(args.batch, t, a, ours.config.z_dim, torch.Generator().manual_seed(1))
    ours.draw_noise = lambda steps, batch, device: data["noise"]  # type: ignore[method-assign]
    batch = {"obs": data["obs"], "action": data["action"]}
    frames = ours.frames(data["obs"], 2).transpose(0, 1)
    steps = t - 1
    rows = []

    opts = ours.configure_optimizers()

    def ours_update() -> None:
        ours.run_update({"generator": batch, "discriminator": batch}, opts, log=False)

    ours.eval()
    from worldflux.models.gan.unroll import unroll

    acts = ours._sequence(batch)[1]

    def ours_unroll() -> None:
        with torch.no_grad():
            unroll(ours, frames, acts, 1, data["noise"])

    rows.append(("worldflux", args.batch * steps / timed(ours_unroll, args.repeats)))
    ours.train()
    upd = [timed(ours_update, args.repeats)]
    if args.official:
        opts_o, net_g, net_d, opt3, trainer_cls, _ = build_official(
            Path(args.official), ref_args, a, t, warm_up
        )
        ours.load_state_dict(from_reference(net_g.state_dict(), net_d.state_dict()))
        states = list(frames)
        actions = [data["action"][:, i + 1] for i in range(t - 1)] + [data["action"][:, 0] * 0]
        wrong = [data["wrong"][:, i + 1] for i in range(t - 1)] + [data["wrong"][:, 0]]
        tr = trainer_cls(opts_o, net_g, net_d, *opt3, "", "real", 1.0, FixedNoise(data["noise"]))
        net_g.eval()

        def ref_unroll() -> None:
            with torch.no_grad():
                net_g(FixedNoise(data["noise"]), states, actions, 1)

        def ref_update() -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                _, _, gout, _, _ = tr.generator_trainstep(
                    [s.clone() for s in states], actions, warm_up=warm_up
                )
                tr.discriminator_trainstep(
                    [s.clone() for s in states], actions, wrong, warm_up=warm_up, gout=gout
                )

        rows.append(("official", args.batch * steps / timed(ref_unroll, args.repeats)))
        upd.append(timed(ref_update, args.repeats))
    params = sum(p.numel() for p in ours.parameters())
    print(
        f"setting {args.setting} ({'small' if args.small else 'full'} widths, {params:,} params), batch {args.batch} x {t} frames, {args.threads} thread(s)\n"
    )
    print("| code | generated frames / s | one G+D update (s) |\n|---|---|---|")
    for (name, fps), u in zip(rows, upd):
        print(f"| {name} | {fps:.1f} | {u:.2f} |")
    if args.profile:
        updates = [("worldflux", ours_update)] + (
            [("official", ref_update)] if args.official else []
        )
        for name, fn in updates:
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                fn()
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile)
            print(f"\n{name}: one G+D update, top {args.profile} ops by self CPU time\n{table}")


if __name__ == "__main__":
    main()
