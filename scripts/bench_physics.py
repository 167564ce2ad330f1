"""Speed of the physics family: loss + backward and rollout steps per second, per preset.

Usage::

    python scripts/bench_physics.py [--official /path/to/hamiltonian-nn] [--device cpu]

With ``--official`` the reference HNN's ``time_derivative`` + ``L2_loss`` + backward is timed on
the same batch as ours (same weights, ``scripts/compare_physics_official.py`` shows they agree).
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from worldflux import create_world_model


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Seconds per call of ``fn`` (after one warm-up call)."""
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def bench(preset: str, batch: int, t: int, device: str, repeat: int) -> dict[str, float]:
    model = create_world_model(preset, device=device)
    c = model.config
    gen = torch.Generator().manual_seed(0)
    if c.kind == "pixel_hnn":
        obs = torch.randint(0, 256, (batch, t, *c.obs_shape), dtype=torch.uint8, generator=gen)
    else:
        obs = torch.randn(batch, t, *c.obs_shape, generator=gen)
    data = {"obs": obs.to(device), "action": torch.zeros(batch, t, c.action_dim, device=device)}
    if c.derivative_target == "exact":  # physics:lnn regresses the recorded exact dx/dt
        data["state_dot"] = torch.randn(batch, t, *c.obs_shape, generator=gen).to(device)

    def update() -> None:
        model.zero_grad(set_to_none=True)
        model.loss(data).total.backward()

    x = model.encode(obs[:, 0].to(device)).detach()
    actions = torch.zeros(batch, 10, c.action_dim, device=device)

    def roll() -> None:
        with torch.no_grad():
            model.rollout(x, actions)

    return {"update_s": timed(update, repeat), "rollout_step_s": timed(roll, repeat) / 10}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", default=None, help="hamiltonian-nn checkout (optional)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)  # the numbers below are single-thread CPU numbers
    rows = []
    for preset, batch, t in (("physics:base", 256, 2), ("physics:pixel_hnn", 200, 2),
                             ("physics:lnn", 100, 2), ("physics:controlled", 32, 5)):  # fmt: skip
        r = bench(preset, batch, t, args.device, args.repeat)
        rows.append((preset, f"{batch} x {t}", r["update_s"] * 1e3, r["rollout_step_s"] * 1e3))
    if args.official:
        sys.path.insert(0, str(Path(args.official)))
        import hnn as ohnn  # noqa: PLC0415 - the reference, from --official
        import nn_models as onn  # noqa: PLC0415

        ref = ohnn.HNN(2, differentiable_model=onn.MLP(2, 200, 2, "tanh"))
        x = torch.randn(256, 2, requires_grad=True)
        target = torch.randn(256, 2)

        def ref_update() -> None:
            ref.zero_grad(set_to_none=True)
            (target - ref.time_derivative(x)).pow(2).mean().backward()

        rows.append(("hamiltonian-nn HNN (reference)", "256", timed(ref_update, args.repeat) * 1e3,
                     float("nan")))  # fmt: skip
    print("| model | batch | loss + backward (ms) | rollout step (ms) |")
    print("|---|---|---|---|")
    for name, shape, upd, roll in rows:
        print(f"| {name} | {shape} | {upd:.2f} | {roll:.2f} |")


if __name__ == "__main__":
    main()
