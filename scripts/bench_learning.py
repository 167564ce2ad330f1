"""Learning benchmark: train through ``python -m worldflux.train`` and print the return curve.

Runs ``python -m worldflux.train <overrides>`` in a fresh run directory (its output goes to
``<run dir>/train.log``), reads the episode returns from the run's ``csv/metrics.csv`` and prints
their mean per env-step bin, the wall time, and the mean return of a uniformly random policy on
the same environment (the baseline). ``docs/learning.md`` has the recorded curves.

Usage::

    python scripts/bench_learning.py experiment=tdmpc2_pendulum
    python scripts/bench_learning.py experiment=dreamer_cartpole seed=1 --rows 10
    python scripts/bench_learning.py experiment=tdmpc2_pendulum data.env_steps=3000 \\
        --run-dir outputs/bench/short --random-episodes 20
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: Added to every run: a fresh start, no progress bar, the CSV logger with a row per update.
RUN_OVERRIDES = [
    "resume=never",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
    "callbacks.metrics.every_n_updates=1",
    "++logger.csv._target_=worldflux.training.loggers.csv",
]


def train(overrides: list[str], run_dir: Path) -> float:
    """Run the training entry point; return its wall time in seconds."""
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "worldflux.train", *overrides, *RUN_OVERRIDES]
    cmd.append(f"hydra.run.dir={run_dir}")
    start = time.perf_counter()
    with open(run_dir / "train.log", "w") as log:
        done = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        tail = (run_dir / "train.log").read_text()[-3000:]
        raise RuntimeError(f"training failed ({done.returncode}):\n{tail}")
    return time.perf_counter() - start


def episodes(metrics_csv: Path) -> list[tuple[int, float]]:
    """``(env step at its end, return)`` of every finished episode (``env/episode/return``).

    Every episode is logged as its own row, at the environment step it ended on.
    """
    out = []
    with open(metrics_csv) as f:
        for row in csv.DictReader(f):
            if row.get("env/episode/return"):
                out.append((int(float(row["step"])), float(row["env/episode/return"])))
    return out


def curve(eps: list[tuple[int, float]], env_steps: int, rows: int) -> list[tuple[int, int, float]]:
    """``(bin end, episodes, mean return)`` over ``rows`` equal env-step bins."""
    edges = np.linspace(0, env_steps, rows + 1).astype(int)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        returns = [r for step, r in eps if lo < step <= hi]
        out.append((int(hi), len(returns), float(np.mean(returns)) if returns else float("nan")))
    return out


def random_return(overrides: list[str], n: int, seed: int = 12345) -> tuple[float, float]:
    """Mean and standard deviation of ``n`` episode returns of uniformly random actions."""
    from hydra import compose, initialize_config_dir

    from worldflux.catalog import conf_dir
    from worldflux.core.config import to_plain
    from worldflux.envs.registry import make_vector_env
    from worldflux.train import _normalise_argv
    from worldflux.training.collector import Collector

    keep = [o for o in _normalise_argv(overrides) if not o.startswith(("hydra.", "+hydra."))]
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("train", overrides=keep)
    collector = Collector(make_vector_env(to_plain(cfg.env), seed=seed), None, seed, window=n)
    while collector.episodes < n:
        collector.step(None)
    collector.envs.close()
    return float(np.mean(collector.scores)), float(np.std(collector.scores))


def run(overrides: list[str], run_dir: Path, rows: int = 10, random_episodes: int = 50) -> dict:
    """Train, then return ``{"curve", "episodes", "env_steps", "wall_s", "random"}``."""
    wall = train(overrides, run_dir)
    steps = _env_steps(run_dir)
    eps = episodes(run_dir / "csv" / "metrics.csv")
    return {
        "curve": curve(eps, steps, rows),
        "episodes": eps,
        "env_steps": steps,
        "wall_s": wall,
        "random": random_return(overrides, random_episodes),
    }


def _env_steps(run_dir: Path) -> int:
    from omegaconf import OmegaConf

    return int(OmegaConf.load(run_dir / ".hydra" / "config.yaml").data.env_steps)


def report(result: dict[str, Any], overrides: list[str]) -> str:
    """The result as a Markdown table plus a summary line."""
    lines = ["| env steps | episodes | mean return |", "|---:|---:|---:|"]
    for end, n, mean in result["curve"]:
        lines.append(f"| {end} | {n} | {mean:.1f} |")
    mean, std = result["random"]
    lines.append("")
    lines.append(
        f"python -m worldflux.train {' '.join(overrides)}: {result['env_steps']} env steps, "
        f"{len(result['episodes'])} episodes, wall {result['wall_s']:.0f} s; "
        f"random policy {mean:.1f} +- {std:.1f}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="+", help="train overrides, e.g. experiment=...")
    parser.add_argument("--rows", type=int, default=10, help="env-step bins of the table")
    parser.add_argument("--run-dir", type=Path, default=None, help="default outputs/bench/<name>")
    parser.add_argument("--random-episodes", type=int, default=50)
    args = parser.parse_args()
    name = "_".join(o.replace("=", "-").replace("/", "-") for o in args.overrides)
    run_dir = (args.run_dir or ROOT / "outputs" / "bench" / name).resolve()
    result = run(args.overrides, run_dir, args.rows, args.random_episodes)
    print(report(result, args.overrides))


if __name__ == "__main__":
    main()
