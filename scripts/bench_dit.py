"""Sampling speed of the DiT family: predicted frames per second at 250, 50 and 10 sampler steps.

Usage::

    python scripts/bench_dit.py                                   # dit:ci on the CPU
    python scripts/bench_dit.py --preset dit:base --device cuda   # CDiT-B/2 latents on a GPU
    python scripts/bench_dit.py --official /tmp/nwm               # + NWM's own sampling loop

A frame is one next-frame latent sampled from a context window (the VAE decode is not timed: for
``sd_vae`` presets it needs the SD VAE weights). The reference, when ``--official`` points at a
facebookresearch/nwm checkout (3f6cd8e), runs its ``p_sample_loop`` on the same weights and
inputs. Attention runs through ``scaled_dot_product_attention`` in both codes. Prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from worldflux import create_world_model


def _time(fn, device: str, repeats: int) -> float:  # noqa: ANN001
    fn()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="dit:ci")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, nargs="+", default=[250, 50, 10])
    parser.add_argument("--sampler", default="ddpm", choices=["ddpm", "ddim"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--official", default=None, help="facebookresearch/nwm checkout")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model = create_world_model(args.preset, device=args.device).eval()
    c = model.config
    ch, size, _ = c.latent_shape()
    dev = torch.device(args.device)
    window = torch.randn(args.batch, c.context_size, ch, size, size, device=dev)
    action = torch.randn(args.batch, c.action_dim, device=dev)
    dtype = torch.bfloat16 if args.device == "cuda" else None
    rows = []
    for steps in args.steps:

        def ours(steps: int = steps) -> None:
            with torch.autocast(args.device, dtype=dtype, enabled=dtype is not None):
                model.predict_next(window, action, num_steps=steps, sampler=args.sampler)

        sec = _time(ours, args.device, args.repeats)
        rows.append(("worldflux", steps, args.batch / sec))
        if args.official:
            sys.path.insert(0, str(Path(args.official).resolve()))
            from diffusion import create_diffusion

            process = create_diffusion(str(steps))
            rel_t = torch.full((args.batch,), c.rel_t, device=dev)
            kw = dict(y=action, x_cond=window, rel_t=rel_t)

            def forward(x, t, y, x_cond, rel_t):  # noqa: ANN001, ANN202 - the reference's names
                return model.ema.target(x, t, y, x_cond, rel_t)

            def ref(process=process, kw=kw) -> None:  # noqa: ANN001
                with torch.autocast(args.device, dtype=dtype, enabled=dtype is not None):
                    process.p_sample_loop(
                        forward,
                        (args.batch, ch, size, size),
                        clip_denoised=False,
                        model_kwargs=kw,
                        device=dev,
                    )

            rows.append(("nwm reference loop", steps, args.batch / _time(ref, args.device, 1)))
    print(f"{args.preset} on {args.device}, batch {args.batch}, sampler {args.sampler}")
    print("| code | sampler steps | frames / s |")
    print("|---|---|---|")
    for code, steps, fps in rows:
        print(f"| {code} | {steps} | {fps:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
