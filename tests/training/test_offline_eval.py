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


def test_open_loop_video_of_a_decoding_family(tmp_path: Path) -> None:
    import torch

    from worldflux import create_world_model
    from worldflux.envs.registry import env_spec
    from worldflux.training.data import OnlineDataModule
    from worldflux.training.video import open_loop_frames, write_gif

    env = {"suite": "dummy", "id": "discrete_image", "num_envs": 1, "image_size": 16}
    spec = env_spec(env)
    model = create_world_model("dreamer:ci", **spec.model_kwargs())
    assert all(model.supports(op) for op in ("observe", "rollout", "decode"))
    dm = OnlineDataModule(env, spec, 2, 8, train_ratio=1.0, prefill=20, env_steps=100, capacity=100)
    dm.setup()
    for _ in range(20):
        dm.collector.step(None)
    batch = dm.replay.sample(2, 8)
    tensors = {k: torch.as_tensor(v) for k, v in batch.items()}
    frames = open_loop_frames(model.eval(), tensors, context=3)
    assert frames.shape == (5, 2 * 16, 3 * 16, 3) and frames.dtype == np.uint8
    # the left third is the ground truth of the open-loop steps
    np.testing.assert_array_equal(frames[0, :16, :16], batch["obs"][0, 3].transpose(1, 2, 0))
    assert write_gif(tmp_path / "v.gif", frames).stat().st_size > 0
