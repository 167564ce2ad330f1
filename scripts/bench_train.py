"""Measure training throughput of a preset: gradient steps/s, env steps/s and peak memory.

Usage::

    python scripts/bench_train.py --model dreamerv3:size12m --device cuda
    python scripts/bench_train.py --model dreamer:ci --model tdmpc2:ci --device cpu --updates 20

For each preset the model is built for the environment's spaces and trained at its default batch
(``config.batch_size x config.batch_length``; ``--batch-size``/``--batch-length`` override) on
batches sampled from a replay filled by the environment. Three numbers are reported:

- updates/s: updates through a Lightning ``Trainer`` (after ``--warmup`` untimed ones); an update
  is one pass of the family's due training phases, whatever number of optimisers it steps
  (TD-MPC2 steps two per update), counted by the data module, not by ``trainer.global_step``;
- env steps/s: environment steps with actions from the model's own ``act`` (its policy or
  planner; random actions for families without ``act``), batch of ``--num-envs`` environments;
- peak memory: the CUDA allocator's peak (cuda) or the process's peak resident set size (cpu).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from typing import Any


def _peak_memory_mb(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return rss / 1024


def _env_rate(model: Any, env_cfg: dict[str, Any], steps: int, seed: int) -> float:
    from worldflux.envs.registry import make_vector_env
    from worldflux.training.collector import Collector

    collector = Collector(make_vector_env(env_cfg, seed=seed), None, seed=seed)
    policy = model if model.supports("act") else None
    collector.step(None)
    start = time.perf_counter()
    for _ in range(steps):
        collector.step(policy)
    return steps * collector.envs.num_envs / (time.perf_counter() - start)


def bench(model_id: str, args: argparse.Namespace) -> dict[str, Any]:
    """Benchmark one preset; return a table row."""
    import lightning as L
    import torch

    from worldflux import create_world_model
    from worldflux.envs.registry import env_spec
    from worldflux.training.callbacks import TrainMetrics
    from worldflux.training.data import OnlineDataModule, batch_shape

    env_cfg = {
        "suite": "embedded",
        "id": "catch",
        "num_envs": args.num_envs,
        "obs": args.obs,
        "action": args.action,
        "size": args.image_size,
    }
    spec = env_spec(env_cfg)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model = create_world_model(model_id, **spec.model_kwargs())
    b, t = batch_shape(model, args.batch_size, args.batch_length)
    total = args.warmup + args.updates
    # a train ratio high enough that the timed part is (almost) only updates
    dm = OnlineDataModule(
        env_cfg,
        spec,
        b,
        t,
        train_ratio=b * t * 1000,
        prefill=t + 1,
        env_steps=10**9,
        capacity=max(10 * t, 1000),
        seed=0,
        schedule=getattr(model, "schedule", None),
        max_updates=total,
    )
    timer = _timer(args.warmup)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="gpu" if args.device == "cuda" else "cpu",
        precision=args.precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer, TrainMetrics(10**9)],
    )
    trainer.fit(model, datamodule=dm)
    if dm.updates != total:
        raise RuntimeError(f"expected {total} updates, the run made {dm.updates}")
    update_rate = args.updates / max(timer.elapsed, 1e-9)
    env_rate = _env_rate(model, env_cfg, args.env_steps, seed=1)
    return {
        "model": model_id,
        "device": args.device,
        "batch": f"{b}x{t}",
        "params": model.num_parameters(),
        "updates/s": update_rate,
        "env steps/s": env_rate,
        "peak MiB": _peak_memory_mb(args.device),
    }


def _timer(warmup: int) -> Any:
    """A Lightning callback timing the updates after ``warmup`` untimed ones (counted by the
    data module, so an update with several optimiser steps counts once)."""
    import lightning as L
    import torch

    class Timer(L.Callback):
        def __init__(self) -> None:
            self.start: float | None = None
            self.elapsed = 0.0

        def on_train_batch_end(
            self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int
        ) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            if trainer.datamodule.updates == warmup:
                self.start = time.perf_counter()
            elif self.start is not None:
                self.elapsed = time.perf_counter() - self.start

    return Timer()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", help="preset id or alias (repeatable)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--precision", default=None, help="Lightning precision (default: bf16-mixed on cuda)"
    )
    parser.add_argument("--updates", type=int, default=20, help="timed updates")
    parser.add_argument("--warmup", type=int, default=3, help="untimed updates first")
    parser.add_argument("--env-steps", type=int, default=50, help="timed vector env steps")
    parser.add_argument("--num-envs", type=int, default=1)
    parser.add_argument(
        "--obs",
        default=None,
        choices=["image", "vector"],
        help="Catch observations (default: the preset's default_obs)",
    )
    parser.add_argument(
        "--action",
        default=None,
        choices=["discrete", "continuous"],
        help="default: discrete for image presets, continuous for vector ones",
    )
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--batch-length", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.updates < 1:
        parser.error("--warmup and --updates must be >= 1 (the timer starts after the warm-up)")
    import torch

    from worldflux import catalog

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cpu":
        from worldflux.training.setup import keep_freed_memory

        keep_freed_memory()  # as python -m worldflux.train does on CPU
    if args.precision is None:
        args.precision = "bf16-mixed" if args.device == "cuda" else "32-true"
    rows = []
    for name in args.model or ["dreamer:ci"]:
        preset, _ = catalog.resolve(name)
        default_obs = catalog.info(preset).get("default_obs", "image")
        run = argparse.Namespace(**vars(args))
        run.obs = args.obs or default_obs
        run.action = args.action or ("discrete" if run.obs == "image" else "continuous")
        rows.append(bench(preset, run))
    keys = list(rows[0])
    fmt = {
        "updates/s": "{:.2f}",
        "env steps/s": "{:.1f}",
        "peak MiB": "{:.0f}",
        "params": "{:,}",
    }
    cells = [[fmt.get(k, "{}").format(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print(" | ".join(k.ljust(w) for k, w in zip(keys, widths)))
    print("-|-".join("-" * w for w in widths))
    for c in cells:
        print(" | ".join(v.ljust(w) for v, w in zip(c, widths)))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
        f"{torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
