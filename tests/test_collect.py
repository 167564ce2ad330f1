"""``python -m worldflux.collect``: per-environment default folders, no mixing, appending, and
datasets that stay readable (and trainable) after the collect process is SIGKILLed."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from worldflux.data.episodes import episodes, load_replay

CATCH_VECTOR = {"suite": "embedded", "id": "catch", "obs": "vector", "action": "continuous"}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worldflux.collect", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _collect(path: Path, env: dict, episodes: int, seed: int = 0) -> dict:
    from worldflux.collect import collect

    cfg = {"env": env, "episodes": episodes, "policy": "random", "eval_mode": False}
    return collect(OmegaConf.create({**cfg, "seed": seed, "device": "cpu", "path": str(path)}))


def test_default_folder_is_per_environment_and_observation_kind() -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import worldflux.collect  # noqa: F401  (registers the folder resolver)
    from worldflux.catalog import conf_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        paths = {
            env: compose("collect", overrides=[f"env={env}"]).path
            for env in ("catch", "catch_vector")
        }
    GlobalHydra.instance().clear()
    assert paths["catch"] == "outputs/datasets/embedded-catch-image-discrete-0"
    assert paths["catch_vector"] == "outputs/datasets/embedded-catch-vector-continuous-0"


def test_collecting_again_appends_new_episodes(tmp_path: Path) -> None:
    _collect(tmp_path, CATCH_VECTOR, 2)
    summary = _collect(tmp_path, CATCH_VECTOR, 2)
    assert summary["episodes"] == 2 and summary["total_episodes"] == 4
    files = [e.file for e in episodes(tmp_path)]
    assert [f.name[:6] for f in files] == ["000000", "000001", "000002", "000003"]
    # the appended run is seeded apart from the first, so it adds new episodes, not copies
    first, third = (np.load(files[i])["obs__obs"] for i in (0, 2))
    assert first.shape != third.shape or not np.array_equal(first, third)


def test_cli_refuses_another_environments_dataset(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _collect(data, CATCH_VECTOR, 1)
    before = (data / "spec.json").read_text()
    result = _cli("env=catch", "episodes=1", f"path={data}", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "obs='vector'" in result.stderr and "obs='image'" in result.stderr
    assert (data / "spec.json").read_text() == before and len(episodes(data)) == 1


def _kill_when(proc: subprocess.Popen[bytes], ready: object, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not ready() and proc.poll() is None and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.slow
def test_sigkilled_collect_leaves_a_dataset_offline_training_reads(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cmd = [sys.executable, "-m", "worldflux.collect", "env=catch_vector", "episodes=1000000"]
    cmd.append(f"path={data}")
    rng = np.random.default_rng(0)

    def listed() -> int:
        try:
            return len(episodes(data))
        except Exception:  # the manifest is replaced atomically; a miss just polls again
            return 0

    # Kill points: during start-up, right after the first episodes, and at random times
    # while episodes stream out (each run appends to what the previous ones left).
    points = [lambda: True, lambda: listed() >= 1]
    points += [
        functools.partial(_after, [], float(rng.uniform(0.0, 0.3)), listed) for _ in range(3)
    ]
    for i, ready in enumerate(points):
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        if i == 0:
            time.sleep(0.3)
        _kill_when(proc, ready)
        assert proc.returncode == -signal.SIGKILL
        if listed():
            replay = load_replay(data)
            assert len(replay) == sum(e.length for e in episodes(data))
            assert not [p for p in data.rglob("*") if ".tmp" in p.name]

    run = tmp_path / "run"
    train = subprocess.run(
        [
            sys.executable, "-m", "worldflux.train", "model=tdmpc2/ci", "env=catch_vector",
            "data=offline", f"data.path={data}", "data.updates=2", "data.batch_size=4",
            "data.batch_length=4", "logger=none", "export=false", "device=cpu", "threads=1",
            "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
            f"hydra.run.dir={run}",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    assert "trained 2 updates" in train.stdout


def _after(started: list[float], delay: float, listed: object) -> bool:
    """True ``delay`` seconds after the run's first listed episode."""
    if not started:
        if listed() < 1:  # type: ignore[operator]
            return False
        started.append(time.monotonic())
    return time.monotonic() - started[0] >= delay


def test_a_sigkilled_collect_leaves_a_readable_dataset(tmp_path: Path) -> None:
    """The fast variant of the test above: one kill mid-stream, then batches are sampled as
    offline training samples them."""
    data = tmp_path / "data"
    cmd = [sys.executable, "-m", "worldflux.collect", "env=catch_vector", "episodes=1000000"]
    proc = subprocess.Popen(
        [*cmd, f"path={data}"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    torn = data / "episodes" / ".999999-torn.tmp"

    def streaming() -> bool:
        try:
            return len(episodes(data)) >= 3
        except Exception:  # the manifest is replaced atomically; a miss just polls again
            return False

    _kill_when(proc, streaming)
    assert proc.returncode == -signal.SIGKILL
    torn.write_bytes(b"PK\x03\x04")  # as if the kill had come in the middle of np.savez
    batch = load_replay(data).sample(4, 8)
    assert batch["obs"].shape == (4, 8, 3)
    assert not torn.exists()
