"""Speed of jepa (PLDM, wall): planning steps per second (MPPI, 2000 samples) and one update.

    python scripts/bench_jepa.py [--device cpu] [--threads 1] [--horizon 16] [--repeats 3]
    python scripts/bench_jepa.py --reference /work/ref/pldm   # also time PLDM's own modules

Prints a table. The planning step is one ``act(obs, goal=...)`` of ``jepa:base`` with the
shared MPPI at PLDM's sample count (2000) for one environment, and one plan of the same with
PLDM's running cost (``RunningGoalMPPI``, horizon 32); the update is one Adam step of
the full PLDM loss on a batch of 64 sequences of 16 frames (2 x 65 x 65). With ``--reference``
(a checkout of vladisai/PLDM @ cbaf674) the same forward + backward of the reference's encoder
and predictor is timed on the same CPU for comparison.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def ours(args: argparse.Namespace) -> dict[str, float]:
    from worldflux import create_world_model

    torch.manual_seed(0)
    model = create_world_model("jepa:base", device=args.device, **{"planner.horizon": args.horizon})
    b, t = args.batch, args.length
    batch = {
        "obs": torch.randint(0, 256, (b, t, 2, 65, 65), dtype=torch.uint8, device=args.device),
        "action": torch.rand(b, t, 2, device=args.device) * 2 - 1,
        "first": torch.zeros(b, t, dtype=torch.bool, device=args.device),
    }
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def update() -> None:
        opt.zero_grad()
        model.loss(batch).total.backward()
        opt.step()

    obs = batch["obs"][:1, 0]
    goal = batch["obs"][:1, 1]

    def plan() -> None:
        with torch.no_grad():
            model.act(obs, None, goal=goal, eval_mode=True)

    from worldflux.models.jepa.planning import RunningGoalMPPI

    running = RunningGoalMPPI(
        2,
        horizon=32,
        iterations=3,
        num_samples=2000,
        num_elites=64,
        num_pi_trajs=0,
        max_std=1.0,
        temperature=10.0,
        objective="goal",
    )  # fmt: skip  (conf/model/jepa/planner/mppi_running.yaml)

    def plan_running() -> None:
        with torch.no_grad():
            z, g = model.plan_encode(obs, None), model.plan_encode(goal, None)
            running.plan(model, z, goal=g, eval_mode=True)

    return {
        "update_s": _time(update, args.repeats),
        "plan_s": _time(plan, args.repeats),
        "plan_running_s": _time(plan_running, args.repeats),
    }


def reference(args: argparse.Namespace) -> dict[str, float]:
    sys.path.insert(0, args.reference)
    from pldm.models.encoders.impala import ImpalaEncoder  # type: ignore[import-not-found]

    torch.manual_seed(0)
    enc = ImpalaEncoder(final_ln=True).to(args.device)
    gru = torch.nn.GRU(2, 512).to(args.device)  # RNNPredictorV2's only module
    b, t = args.batch, args.length
    x = torch.rand(t, b, 2, 65, 65, device=args.device)
    a = torch.rand(t - 1, b, 2, device=args.device)
    params = [*enc.parameters(), *gru.parameters()]
    opt = torch.optim.Adam(params, lr=1e-4)

    def update() -> None:
        opt.zero_grad()
        z = enc(x.flatten(0, 1)).encodings.view(t, b, -1)
        h, preds = z[0][None], [z[0]]
        for i in range(t - 1):
            out, h = gru(a[i][None], h)
            h = enc.final_ln(h)
            preds.append(h[0])
        loss = (torch.stack(preds)[1:] - z[1:]).pow(2).mean() + z.var(1).mean()
        loss.backward()
        opt.step()

    return {"update_s": _time(update, args.repeats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--horizon", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference", default=None, help="path of a vladisai/PLDM checkout")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [("worldflux jepa:base", ours(args))]
    if args.reference:
        rows.append(("PLDM reference (encoder + GRU)", reference(args)))
    print(f"device {args.device}, {args.threads} thread(s), batch {args.batch} x {args.length}")
    h = args.horizon
    print(
        f"| implementation | update (s) | planning step, MPPI 2000 x H{h} x 4 it (s) | steps/s "
        "| planning step, RunningGoalMPPI 2000 x H32 x 3 it (s) | steps/s |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        cells = [f"{r['update_s']:.3f}"]
        for key in ("plan_s", "plan_running_s"):
            t = r.get(key)
            cells += [f"{t:.3f}", f"{1 / t:.2f}"] if t else ["-", "-"]
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
