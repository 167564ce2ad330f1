"""Kill a real training run and run the same command again: it resumes from the checkpoint,
and after any number of kills ends with the counts (and weights) of an uninterrupted run."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
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


# ---------------------------------------------------------------------------------------------
# exact resume: kill a run at random points, rerun it each time; the counts match a clean run

EXACT_BUDGET = 260


def _phased_command(run_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "worldflux.train",
        "model=phasedemo/ci",
        "env=catch_vector",
        "data.prefill=16",
        f"data.env_steps={EXACT_BUDGET}",
        "callbacks.checkpoint.every_n_updates=7",
        "callbacks.checkpoint.keep_last=2",
        "logger=csv",
        "device=cpu",
        "threads=1",
        "export=false",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        f"hydra.run.dir={run_dir}",
    ]


def _final_state(run_dir: Path) -> dict:
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    return {
        "updates": state["OnlineDataModule"]["updates"],
        "env_steps": state["OnlineDataModule"]["collector"]["env_steps"],
        "phases": state["worldflux_phases"],
        "global_step": state["global_step"],
        "weights": state["state_dict"],
    }


def _run_with_kills(run_dir: Path, kills: int, seed: int) -> tuple[str, list[int]]:
    """Run the command, SIGKILL it ``kills`` times at random points after a new checkpoint,
    then let it finish; return the last session's output and the update counts killed at."""
    rng = random.Random(seed)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    last = run_dir / "checkpoints" / "last.ckpt"
    killed_at: list[int] = []
    for _ in range(kills):
        before = _saved_updates(last)
        proc = subprocess.Popen(
            _phased_command(run_dir),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if _saved_updates(last) > before:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))  # anywhere between two checkpoints, or while saving
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at.append(_saved_updates(last))
    final = subprocess.run(
        _phased_command(run_dir), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    out = final.stdout + final.stderr
    assert final.returncode == 0, out[-3000:]
    return out, killed_at


def _saved_updates(last: Path) -> int:
    try:
        return int(torch.load(last, weights_only=True)["OnlineDataModule"]["updates"])
    except Exception:  # not written yet (the rename is atomic, so never half-written)
        return 0


def _check_exact(tmp_path: Path, kills: int, seed: int) -> None:
    clean_dir, killed_dir = tmp_path / "clean", tmp_path / "killed"
    clean_out, _ = _run_with_kills(clean_dir, 0, seed)
    out, killed_at = _run_with_kills(killed_dir, kills, seed)
    assert "resuming from" in out
    assert any(k > 0 for k in killed_at), f"no kill happened mid-run: {killed_at}"
    clean, resumed = _final_state(clean_dir), _final_state(killed_dir)
    assert resumed["env_steps"] == clean["env_steps"] == EXACT_BUDGET
    assert resumed["updates"] == clean["updates"], (killed_at, resumed["updates"])
    assert resumed["phases"] == clean["phases"]  # every phase ran as often as uninterrupted
    assert resumed["global_step"] == clean["global_step"] == clean["updates"]  # honest counter
    # (weights are not compared: a resumed run resets the environments, so the episodes that
    # were running at the kill continue differently, and so do the collected data)
    assert all(torch.isfinite(v).all() for v in resumed["weights"].values())
    kept = sorted((killed_dir / "checkpoints").glob("update-*.ckpt"))
    assert len(kept) == 2
    match = re.search(r"trained (\d+) updates", clean_out)
    assert match and int(match[1]) == clean["updates"]


def test_two_kills_end_with_the_counts_of_a_clean_run(tmp_path: Path) -> None:
    _check_exact(tmp_path, kills=2, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_many_random_kills_end_with_the_counts_of_a_clean_run(tmp_path: Path, seed: int) -> None:
    _check_exact(tmp_path, kills=6, seed=seed)


# ---------------------------------------------------------------------------------------------
# checkpoint options (callbacks.checkpoint)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"every_n_updates": 0}, r"every_n_updates must be a positive integer or null .*got 0"),
        ({"every_n_updates": -5}, r"every_n_updates must be a positive integer .*got -5"),
        ({"every_n_updates": 2.5}, r"every_n_updates must be a positive integer"),
        ({"every_n_updates": "10"}, r"every_n_updates must be a positive integer .*got '10'"),
        ({"every_n_seconds": 0}, r"every_n_seconds must be a positive number or null"),
        ({"every_n_seconds": -1.0}, r"every_n_seconds must be a positive number"),
        ({"keep_last": -1}, r"keep_last must be an integer >= 0, got -1"),
        ({"keep_last": True}, r"keep_last must be an integer >= 0"),
        (
            {"every_n_update": 5},
            r"unknown option callbacks\.checkpoint\.every_n_update.*'every_n_updates'",
        ),
    ],
)
def test_bad_checkpoint_options_are_clear_errors(options: dict, message: str) -> None:
    from worldflux.errors import ConfigError
    from worldflux.training.setup import checkpoint_callback

    with pytest.raises(ConfigError, match=message):
        checkpoint_callback(options, "unused")


def _fit_double(double: Any, tmp_path: Path, **options: Any) -> tuple[Any, Any]:
    import lightning as L

    from worldflux.envs.registry import env_spec
    from worldflux.training.checkpoint import AtomicCheckpointIO
    from worldflux.training.data import OnlineDataModule
    from worldflux.training.setup import checkpoint_callback

    env = {"suite": "dummy", "id": "discrete_vector", "num_envs": 2, "episode_length": 8}
    spec = env_spec(env)
    ckpt = checkpoint_callback(options, str(tmp_path / "ckpt"))
    dm = OnlineDataModule(
        env,
        spec,
        4,
        5,
        train_ratio=10.0,
        prefill=20,
        env_steps=100,
        capacity=500,
        checkpoint_dir=str(tmp_path / "ckpt"),
    )
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[ckpt],
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(tmp_path),
    )
    trainer.fit(double(spec), datamodule=dm)
    return ckpt, dm


def test_keep_last_keeps_the_newest_checkpoints_and_their_replays(
    double: Any, tmp_path: Path
) -> None:
    ckpt, dm = _fit_double(double, tmp_path, every_n_updates=7, keep_last=3)
    kept = sorted((tmp_path / "ckpt").glob("update-*.ckpt"))
    assert len(kept) == 3 and kept[-1].name == f"update-{dm.updates:09d}.ckpt"
    assert ckpt.last.is_file()
    for path in kept:  # each kept checkpoint is resumable: its replay snapshot is still there
        updates = torch.load(path, weights_only=True)["OnlineDataModule"]["updates"]
        assert (tmp_path / "ckpt" / "replay" / f"rank0-update{updates:09d}.npz").is_file()
        assert updates == int(path.stem.split("-")[1])


def test_time_based_checkpoints(double: Any, tmp_path: Path, monkeypatch: Any) -> None:
    from worldflux.training.callbacks import PeriodicCheckpoint

    saved: list[int] = []
    original = PeriodicCheckpoint.save

    def record(self: Any, trainer: Any, updates: int) -> None:
        saved.append(updates)
        original(self, trainer, updates)

    monkeypatch.setattr(PeriodicCheckpoint, "save", record)
    _, dm = _fit_double(double, tmp_path, every_n_updates=None, every_n_seconds=1e-6)
    assert saved[:3] == [1, 2, 3] and saved[-1] == dm.updates  # every update, then at the end
    monkeypatch.setattr(PeriodicCheckpoint, "save", record)
    saved.clear()
    _fit_double(double, tmp_path / "off", every_n_updates=None, every_n_seconds=None)
    assert len(saved) == 1  # only the final checkpoint
