"""Evaluation: deterministic for a seed, periodic during training, videos, clear warnings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from worldflux.training import video
from worldflux.training.evaluation import run_episodes

CATCH = {"suite": "embedded", "id": "catch", "obs": "vector", "action": "continuous", "size": 16}


@pytest.fixture(scope="module")
def agent() -> Any:
    from worldflux import create_world_model
    from worldflux.envs.registry import env_spec

    return create_world_model("tdmpc2:ci", **env_spec({**CATCH, "num_envs": 1}).model_kwargs())


def test_same_seed_same_returns(agent: Any) -> None:
    # MPPI samples even in eval mode: without seeding torch two evaluations differed.
    import torch

    first = run_episodes(agent, CATCH, episodes=3, seed=7)
    torch.manual_seed(123)  # whatever the global generator holds
    second = run_episodes(agent, CATCH, episodes=3, seed=7)
    assert first.returns == second.returns and first.lengths == second.lengths


def test_evaluation_leaves_the_training_generator_alone(agent: Any) -> None:
    import torch

    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    run_episodes(agent, CATCH, episodes=1, seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_unrenderable_env_warns_clearly() -> None:
    pytest.importorskip("gymnasium")
    pendulum = {"suite": "gym", "id": "Pendulum-v1", "obs": "vector"}
    with pytest.warns(UserWarning, match="cannot render"):
        result = run_episodes(None, pendulum, episodes=1, seed=0, render=True)
    assert result.frames is None and len(result.returns) == 1


def test_periodic_and_final_evaluation_are_logged(compose_train: Any, tmp_path: Path) -> None:
    from worldflux.train import train

    cfg = compose_train(
        "env=catch_vector",
        "data.batch_size=8",
        "data.train_ratio=32",
        "eval.every=5",
        "eval.episodes=1",
        "callbacks.video=null",
        "logger=csv",
    )
    metrics = train(cfg)
    rows = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    column = header.index("eval/return")
    evals = [r.split(",")[column] for r in rows[1:] if r.split(",")[column]]
    updates = int(metrics["train/updates"])
    expected = updates // 5 + (1 if updates % 5 else 0)  # every 5 updates, plus the final
    assert len(evals) == expected, (updates, evals)
    assert "eval/return" in metrics
    videos = sorted(p.suffix for p in (tmp_path / "videos").iterdir())
    assert videos and set(videos) <= {".mp4", ".gif"}


def test_video_falls_back_to_gif(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 255, (4, 9, 7, 3), dtype=np.uint8)
    monkeypatch.setattr(video, "mp4_available", lambda: False)
    assert video.write_video(tmp_path / "clip", frames).suffix == ".gif"


def test_mp4_when_the_video_extra_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("imageio_ffmpeg")
    frames = np.random.default_rng(0).integers(0, 255, (4, 9, 7, 3), dtype=np.uint8)
    path = video.write_video(tmp_path / "clip", frames)
    assert path.suffix == ".mp4" and path.read_bytes()[4:8] == b"ftyp"


def test_tensorboard_video_summary(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from worldflux.training import loggers

    tb = loggers.tensorboard(str(tmp_path))
    frames = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    video.log_video([tb], "video/eval", frames, step=4)
    tb.experiment.flush()
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    image = acc.Images("video/eval")[0]
    assert image.step == 4 and image.encoded_image_string.startswith(b"GIF89a")


def test_eval_app_is_deterministic_and_writes_a_video(tmp_path: Path, agent: Any) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    export = agent.save_pretrained(tmp_path / "export")
    out = []
    for i in range(2):
        cmd = [
            sys.executable, "-m", "worldflux.eval", f"checkpoint={export}", "episodes=2",
            "env=catch_vector", "env.size=16", f"hydra.run.dir={tmp_path / f'eval{i}'}",
        ]  # fmt: skip
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=_env(root))
        assert done.returncode == 0, done.stderr[-3000:]
        out.append(json.loads((tmp_path / f"eval{i}" / "returns.json").read_text()))
    assert out[0]["returns"] == out[1]["returns"]
    assert Path(out[0]["video"]).is_file()


def _env(root: Path) -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
