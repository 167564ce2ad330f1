"""``scripts/diffusion_open_loop.py``: held-out random-action sequences from any env config."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from worldflux.models.diffusion.evaluate import catch_sequences

ROOT = Path(__file__).resolve().parents[3]


def _script():
    path = ROOT / "scripts" / "diffusion_open_loop.py"
    spec = importlib.util.spec_from_file_location("diffusion_open_loop", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sequences_are_whole_episode_starts_in_the_batch_layout() -> None:
    env = {"suite": "embedded", "id": "catch", "size": 16}
    batch = _script().sequences(env, count=3, length=6, seed=12345)
    assert batch["obs"].shape == (3, 6, 3, 16, 16) and batch["obs"].dtype == torch.uint8
    assert batch["action"].shape == (3, 6, 3)
    assert batch["first"][:, 0].all() and not batch["first"][:, 1:].any()
    assert (batch["action"][:, 0] == 0).all() and (batch["action"][:, 1:].sum(-1) == 1).all()
    # the embedded Catch's own held-out sequences are drawn the same way
    same = catch_sequences(3, 6, size=16, seed=12345)
    assert torch.equal(batch["obs"], same["obs"]) and torch.equal(batch["action"], same["action"])
