"""The online loop with a test double: train ratio, collection policy, NaN stop, checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import quiet_trainer
from worldflux.envs.registry import env_spec
from worldflux.errors import ConfigError
from worldflux.training.callbacks import (
    NonFiniteLossError,
    PeriodicCheckpoint,
    StopOnNonFinite,
    TrainMetrics,
)
from worldflux.training.checkpoint import AtomicCheckpointIO
from worldflux.training.data import OnlineDataModule, batch_shape

ENV = {"suite": "dummy", "id": "discrete_vector", "num_envs": 2, "episode_length": 8}


def _fit(model: Any, tmp_path: Path, callbacks: list, **data: Any) -> OnlineDataModule:
    spec = env_spec(ENV)
    args = {"train_ratio": 10.0, "prefill": 20, "env_steps": 100, "capacity": 500}
    args.update(data)
    dm = OnlineDataModule(ENV, spec, 4, 5, seed=0, checkpoint_dir=str(tmp_path / "ckpt"), **args)
    trainer = quiet_trainer(
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(tmp_path),
    )
    trainer.fit(model, datamodule=dm)
    return dm


def test_train_ratio_is_replayed_steps_per_env_step(double: Any, tmp_path: Path) -> None:
    model = double(env_spec(ENV))
    metrics = TrainMetrics(every_n_updates=1)
    dm = _fit(model, tmp_path, [metrics], train_ratio=10.0, prefill=20, env_steps=100)
    c = dm.collector
    assert c.env_steps == 100
    # updates happen from the end of prefill at 10 / (4 * 5) = 0.5 updates per env step
    trained = c.env_steps - dm.train_start
    assert dm.train_start >= 20
    assert abs(dm.updates - trained * 10.0 / 20) <= 2
    ratio = metrics.compute(dm)["perf/train_ratio"]
    assert ratio == pytest.approx(10.0, rel=0.1)
    assert len(dm.replay) == 100 and dm.replay.total == 100


def test_collects_with_act_after_prefill(double: Any, tmp_path: Path) -> None:
    model = double(env_spec(ENV))
    dm = _fit(model, tmp_path, [], prefill=30, env_steps=80)
    assert model.acted > 0
    # the double always picks action 0, which the dummy env rewards with 1
    assert dm.collector.scores and max(dm.collector.scores) == 8.0


def test_random_policy_for_families_without_act(double: Any, tmp_path: Path) -> None:
    model = double(env_spec(ENV))
    model.capabilities = frozenset({"loss"})
    dm = _fit(model, tmp_path, [], prefill=10, env_steps=60)
    assert model.acted == 0 and dm.collector.env_steps == 60


def test_nan_loss_stops_naming_the_step_and_term(double: Any, tmp_path: Path) -> None:
    model = double(env_spec(ENV), nan_after=3)
    with pytest.raises(NonFiniteLossError, match=r"update \d+ .*train/loss/total = nan"):
        _fit(model, tmp_path, [StopOnNonFinite()], env_steps=200)


def test_checkpoint_holds_counters_and_replay(double: Any, tmp_path: Path) -> None:
    model = double(env_spec(ENV))
    ckpt = PeriodicCheckpoint(str(tmp_path / "ckpt"), every_n_updates=5)
    dm = _fit(model, tmp_path, [ckpt], env_steps=100)
    state = torch.load(ckpt.last, weights_only=True)
    saved = state["OnlineDataModule"]
    assert saved["collector"]["env_steps"] == dm.collector.env_steps
    assert saved["updates"] == dm.updates
    snapshots = sorted((tmp_path / "ckpt" / "replay").glob("rank0-*.npz"))
    assert 1 <= len(snapshots) <= 2 and f"{dm.updates:09d}" in snapshots[-1].name
    assert not list((tmp_path / "ckpt").glob("*.tmp"))
    # a fresh data module restores counters and replay from the checkpoint
    spec = env_spec(ENV)
    fresh = OnlineDataModule(
        ENV,
        spec,
        4,
        5,
        train_ratio=10.0,
        prefill=20,
        env_steps=100,
        capacity=500,
        seed=0,
        checkpoint_dir=str(tmp_path / "ckpt"),
    )
    fresh.load_state_dict(saved)
    assert fresh.collector.env_steps == dm.collector.env_steps
    assert fresh.replay.total == dm.replay.total and len(fresh.replay) == len(dm.replay)


def test_batch_shape_needs_a_source(double: Any) -> None:
    model = double(env_spec(ENV))
    assert batch_shape(model, None, None) == (4, 5)
    assert batch_shape(model, 2, 3) == (2, 3)
    model.config.batch_size = None
    with pytest.raises(ConfigError, match="data.batch_size"):
        batch_shape(model, None, None)
