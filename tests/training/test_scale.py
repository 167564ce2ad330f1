"""Multirun over models and seeds, and DDP with two CPU processes (gloo, spawn): real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SMALL = [
    "env=catch_vector",
    "data.prefill=32",
    "data.env_steps=64",
    "data.batch_size=4",
    "data.batch_length=8",
    "data.train_ratio=32",
    "device=cpu",
    "threads=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "logger=csv",
]


def _run(args: list[str], tmp_path: Path, timeout: int = 600) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "worldflux.train", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    return text


def test_multirun_over_models_and_seeds(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    _run(
        ["-m", "model=dreamer/ci,tdmpc2/ci", "seed=0,1", *SMALL, f"hydra.sweep.dir={sweep}"],
        tmp_path,
    )
    runs = sorted(p.parent for p in sweep.glob("*/export"))
    assert len(runs) == 4, list(sweep.iterdir())
    names = {r.name for r in runs}
    assert any("model-dreamer-ci" in n and "seed-1" in n for n in names)
    assert any("model-tdmpc2-ci" in n and "seed-0" in n for n in names)


def test_ddp_two_cpu_processes(tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    _run(
        [
            "model=tdmpc2/ci",
            *SMALL,
            "trainer=ddp",
            "trainer.strategy=ddp_spawn_find_unused_parameters_true",
            "trainer.devices=2",
            f"hydra.run.dir={run}",
        ],
        tmp_path,
    )
    replay = run / "checkpoints" / "replay"
    assert list(replay.glob("rank0-*.npz")) and list(replay.glob("rank1-*.npz"))
    assert (run / "export" / "model.safetensors").is_file()
