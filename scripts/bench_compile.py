"""What ``compile=true`` gains: eager vs ``torch.compile`` per training update and planning step.

For each preset the same weights and the same batch run eagerly and after
``model.compile_phases()`` (the phase losses' forward and backward graphs, and the planner's
scoring loop), interleaved repeat by repeat so that load on the machine hits both alike. One
update is :meth:`~worldflux.core.training.PhaseTraining.run_update` over every phase (loss,
backward, clip, optimiser step, EMA); one planning step is ``act`` on ``--num-envs``
observations (TD-MPC2's MPPI, or the planner named by ``--planner``). The first compiled call
(the compilation itself) is reported separately.

Usage::

    python scripts/bench_compile.py --threads 2
    python scripts/bench_compile.py --model tdmpc2:5m --setting walker_walk --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from worldflux import create_world_model, get_config
from worldflux.config import config_class

#: (preset, reference setting) pairs measured by default.
DEFAULT = [("tdmpc2:5m", "walker_walk"), ("dreamerv3:size1m", "image_discrete")]


def make_batch(config: Any, b: int, t: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random replay batch ``(b, t)`` in the worldflux format for ``config``'s spaces."""
    g = torch.Generator().manual_seed(seed)
    shape = tuple(config.modalities()["obs"]["shape"])
    if len(shape) == 3:
        obs = torch.randint(0, 256, (b, t, *shape), dtype=torch.uint8, generator=g)
    else:
        obs = torch.randn(b, t, *shape, generator=g)
    a = config.action_dim
    if getattr(config, "action_kind", "continuous") == "discrete":
        action = F.one_hot(torch.randint(0, a, (b, t), generator=g), a).float()
    else:
        action = torch.rand(b, t, a, generator=g) * 2 - 1
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    return {
        "obs": obs,
        "action": action,
        "reward": torch.randn(b, t, generator=g),
        "first": first,
        "terminal": torch.zeros(b, t, dtype=torch.bool),
    }


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(model_id: str, setting: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Rows ``{preset, step, eager, compiled, first}`` (seconds) for one preset."""
    overrides = dict(config_class(get_config(model_id).family).REFERENCE_SETTINGS[setting])
    torch.manual_seed(0)
    eager = create_world_model(model_id, **overrides)
    compiled = create_world_model(model_id, **overrides)
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_phases(**({"backend": args.backend} if args.backend else {}))
    c = eager.config
    batch = make_batch(c, args.batch_size or c.batch_size, getattr(c, "batch_length", 4))
    phases = [p.name for p in eager.schedule.phases]
    opts = {m: m.configure_optimizers() for m in (eager, compiled)}

    def update(model: Any) -> None:
        model.run_update(dict.fromkeys(phases, batch), opts[model], log=False)

    steps: dict[str, Callable[[Any], Any]] = {"update": update}
    if getattr(compiled, "planner", None) is not None:
        obs = make_batch(c, args.num_envs, 1)["obs"][:, 0]

        def plan(model: Any) -> None:
            with torch.no_grad():
                model.act(obs, eval_mode=True)

        steps["plan"] = plan
    rows = []
    for step, fn in steps.items():
        fn(eager)  # warm-up (allocator, oneDNN primitive caches)
        first = _timed(lambda fn=fn: fn(compiled))
        fn(compiled)
        times: dict[str, list[float]] = {"eager": [], "compiled": []}
        for _ in range(args.repeats):
            times["eager"].append(_timed(lambda fn=fn: fn(eager)))
            times["compiled"].append(_timed(lambda fn=fn: fn(compiled)))
        rows.append(
            {
                "preset": model_id,
                "step": step,
                "eager": statistics.median(times["eager"]),
                "compiled": statistics.median(times["compiled"]),
                "first": first,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", help="preset id (repeatable)")
    parser.add_argument("--setting", action="append", help="reference setting per --model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--num-envs", type=int, default=1)
    parser.add_argument("--backend", default=None, help="torch.compile backend (inductor)")
    args = parser.parse_args()
    pairs = list(zip(args.model, args.setting or [])) if args.model else DEFAULT
    if args.model and len(pairs) != len(args.model):
        parser.error("give one --setting per --model")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats}")
    print("| preset | step | eager s | compiled s | speed-up | first compiled call s |")
    print("|---|---|---|---|---|---|")
    for model_id, setting in pairs:
        for r in bench(model_id, setting, args):
            print(
                f"| {r['preset']} ({setting}) | {r['step']} | {r['eager']:.4f} | "
                f"{r['compiled']:.4f} | {r['eager'] / r['compiled']:.2f}x | {r['first']:.1f} |"
            )


if __name__ == "__main__":
    main()
