"""Collect a dataset, train from it offline, evaluate with a video; the GIF writer."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

from worldflux.training.video import encode_gif


def test_gif_roundtrip() -> None:
    pil = pytest.importorskip("PIL.Image")
    frames = np.zeros((3, 10, 12, 3), np.uint8)
    frames[1, :, :, 0] = 255
    frames[2, 5:, :, 2] = 255
    image = pil.open(io.BytesIO(encode_gif(frames)))
    assert image.size == (12, 10) and image.n_frames == 3
    image.seek(1)
    assert (np.asarray(image.convert("RGB"))[..., 0] == 255).all()
    image.seek(2)
    rgb = np.asarray(image.convert("RGB"))
    assert (rgb[5:, :, 2] == 255).all() and (rgb[:5] == 0).all()


def test_collect_then_train_offline_then_eval(compose_train: Any, tmp_path: Path) -> None:
    from worldflux.collect import collect
    from worldflux.eval import evaluate
    from worldflux.train import train

    data = tmp_path / "data"
    env = {
        "suite": "embedded",
        "id": "catch",
        "obs": "vector",
        "action": "continuous",
        "num_envs": 2,
    }
    summary = collect(
        OmegaConf.create(
            {
                "env": env,
                "episodes": 4,
                "policy": "random",
                "eval_mode": False,
                "seed": 0,
                "device": "cpu",
                "path": str(data),
            }
        )
    )
    assert summary["episodes"] == 4 and len(list((data / "episodes").glob("*.npz"))) == 4

    run = tmp_path / "run"
    cfg = compose_train(
        "model=tdmpc2/ci",
        "data=offline",
        f"data.path={data}",
        "data.updates=6",
        "data.batch_size=8",
        "data.batch_length=4",
        "env=catch_vector",
        run_dir=run,
    )
    metrics = train(cfg)
    assert metrics["train/updates"] == 6
    assert (run / "export" / "model.safetensors").is_file()

    out = tmp_path / "eval"
    out.mkdir()
    result = evaluate(
        OmegaConf.create(
            {
                "checkpoint": str(run / "export"),
                "env": {**env, "obs": "vector"},
                "episodes": 2,
                "video": True,
                "fps": 10,
                "seed": 1,
                "device": "cpu",
            }
        ),
        out,
    )
    assert len(result["returns"]) == 2
    assert all(-4 <= r <= 4 for r in result["returns"])
    assert (out / "returns.json").is_file() and Path(result["video"]).stat().st_size > 0
