"""Kill a real training run and run the same command again: it resumes from the checkpoint."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 300


def _command(run_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "worldflux.train",
        "model=tdmpc2/ci",
        "env=catch_vector",
        "data.batch_size=8",
        "data.batch_length=4",
        "data.train_ratio=32",
        "data.prefill=32",
        f"data.env_steps={BUDGET}",
        "callbacks.checkpoint.every_n_updates=10",
        "logger=csv",
        "device=cpu",
        "threads=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        f"hydra.run.dir={run_dir}",
    ]


def test_kill_and_rerun_resumes_counters_and_replay(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.ckpt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(
        _command(run_dir),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not last.is_file() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    log = first.communicate()[0]
    assert last.is_file(), f"no checkpoint before the kill:\n{log[-3000:]}"
    saved = torch.load(last, weights_only=True)["OnlineDataModule"]
    killed_at = saved["collector"]["env_steps"]
    assert 0 < killed_at < BUDGET and saved["updates"] >= 10, "the run was not killed mid-way"

    second = subprocess.run(
        _command(run_dir), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    out = second.stdout + second.stderr
    assert second.returncode == 0, out[-3000:]
    assert "resuming from" in out
    final = torch.load(last, weights_only=True)["OnlineDataModule"]
    assert final["collector"]["env_steps"] == BUDGET
    match = re.search(r"trained (\d+) updates \((\d+) in this session\)", out)
    assert match, out[-2000:]
    total, session = int(match[1]), int(match[2])
    assert total == final["updates"] and session == total - saved["updates"] < total
    # the replay continued from the snapshot: it holds every env step of both sessions
    snapshot = sorted((run_dir / "checkpoints" / "replay").glob("rank0-*.npz"))[-1]
    with np.load(snapshot) as f:
        assert int(f["count"].sum()) == BUDGET
    assert (run_dir / "export" / "model.safetensors").is_file()
