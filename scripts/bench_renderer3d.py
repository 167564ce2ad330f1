"""Speed of renderer3d: rays rendered per second and one training update, per preset.

Usage::

    python scripts/bench_renderer3d.py --presets renderer3d:ci renderer3d:base --ray-batch 1024
    python scripts/bench_renderer3d.py --presets renderer3d:gqn --official /tmp/torch-gqn

- ``rays/s``: ``--rays`` rays of one scene rendered without gradients (the NeRF renderer traces
  them in ``render_chunk`` chunks; GQN renders whole images, so its figure is pixels per second).
- ``update``: one update of both phases (``model`` + ``dynamics``) on a ``--batch`` x
  ``--length`` batch of ``--views`` posed views, with ``ray_batch`` (config, ``--ray-batch``) rays
  per query view; forward, backward and the optimiser steps.
- with ``--official``: the same GQN update in iShohei220/torch-gqn @ c0156c7 (ELBO forward,
  backward and an Adam step on the same batch of scenes).

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from worldflux import create_world_model
from worldflux.models.renderer3d import rays as R


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn: Any, device: str, repeat: int) -> float:
    fn()  # warm-up
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeat


def _batch(model: Any, b: int, t: int, v: int, device: str) -> dict[str, Any]:
    h, w = model.image_size
    return {
        "obs": {
            "views": torch.randint(0, 256, (b, t, 3 * v, h, w), dtype=torch.uint8, device=device),
            "poses": R.orbit_poses(b * t * v, device=torch.device(device)).reshape(b, t, 7 * v),
        },
        "action": torch.rand(b, t, model.config.action_dim, device=device) * 2 - 1,
    }


def bench(preset: str, args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.ray_batch and "gqn" not in preset:
        overrides["ray_batch"] = args.ray_batch
    probe = create_world_model(preset, device="meta")
    c, h, w = probe.config.obs_shape
    mods = {
        "views": {"kind": "image", "shape": (3 * args.views, h, w)},
        "poses": {"kind": "vector", "shape": (7 * args.views,)},
    }
    model = create_world_model(preset, observation_modalities=mods, **overrides).to(args.device)
    opts = [torch.optim.Adam(model.phase_parameters(p), lr=1e-4) for p in model.schedule.phases]
    batch = _batch(model, args.batch, args.length, args.views, args.device)

    def update() -> None:
        for phase, opt in zip(model.schedule.phases, opts):
            opt.zero_grad(set_to_none=True)
            model.phase_loss(phase.name, batch, {}).total.backward()
            opt.step()

    z = torch.randn(1, model.config.latent_dim, device=args.device)
    renderer = model.renderer
    if hasattr(renderer, "trace"):
        pix = torch.arange(args.rays, device=args.device)[None] % (h * w)
        pose = R.canonical_pose(torch.device(args.device))[None]
        o, d = R.pixel_rays(pose, pix, h, w, model.config.fov)

        def render() -> None:
            with torch.no_grad():
                for s in range(0, args.rays, renderer.render_chunk):
                    renderer.trace(
                        z,
                        o[:, s : s + renderer.render_chunk],
                        d[:, s : s + renderer.render_chunk],
                        perturb=False,
                    )

        rays = args.rays
    else:
        poses = R.orbit_poses(4, device=torch.device(args.device))[None]

        def render() -> None:
            with torch.no_grad():
                model.render(z, poses)

        rays = 4 * h * w
    model.eval()
    per_render = _timed(render, args.device, args.repeat)
    model.train()
    per_update = _timed(update, args.device, args.repeat)
    return {
        "preset": preset,
        "params": model.num_parameters(),
        "ray_batch": getattr(renderer, "ray_batch", "-"),
        "rays_per_s": rays / per_render,
        "update_s": per_update,
    }


def bench_official(path: str, args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(Path(path)))
    from model import GQN  # the reference's module, imported from --official

    ref = GQN(representation="pool", L=12, shared_core=True).to(args.device)
    opt = torch.optim.Adam(ref.parameters(), lr=5e-4)
    n = args.batch * args.length  # the same number of scenes as one of our batches
    x = torch.rand(n, args.views - 1, 3, 64, 64, device=args.device)
    v = torch.randn(n, args.views - 1, 7, device=args.device)
    xq, vq = torch.rand(n, 3, 64, 64, device=args.device), torch.randn(n, 7, device=args.device)

    def update() -> None:
        opt.zero_grad(set_to_none=True)
        (-ref(x, v, vq, xq, 2.0).mean()).backward()
        opt.step()

    def render() -> None:
        with torch.no_grad():
            ref.generate(x[:1], v[:1], vq[:1].expand(4, -1)[:1])

    per_render = _timed(render, args.device, args.repeat)
    per_update = _timed(update, args.device, args.repeat)
    return {
        "preset": "torch-gqn @ c0156c7 (GQN part only)",
        "params": sum(p.numel() for p in ref.parameters()),
        "ray_batch": "-",
        "rays_per_s": 64 * 64 / per_render,
        "update_s": per_update,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["renderer3d:ci"])
    parser.add_argument("--ray-batch", type=int, default=0, help="rays per query view (config)")
    parser.add_argument("--rays", type=int, default=4096, help="rays for the rays/s figure")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=4)
    parser.add_argument("--views", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--official", default=None, help="torch-gqn checkout (GQN comparison)")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = [bench(p, args) for p in args.presets]
    if args.official:
        rows.append(bench_official(args.official, args))
    print(
        f"\ndevice {args.device}, batch {args.batch} x {args.length} steps x {args.views} views\n"
    )
    print("| preset | params | ray_batch | rays (pixels) / s | one update (s) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['preset']} | {r['params']:,} | {r['ray_batch']} | {r['rays_per_s']:,.0f} | "
            f"{r['update_s']:.3f} |"
        )


if __name__ == "__main__":
    main()
