"""Episode-aware replay sampling, uint8 storage, capacity and persistence; offline datasets."""

from __future__ import annotations

import numpy as np
import pytest

from worldflux.data.episodes import (
    EpisodeRecorder,
    load_replay,
    read_spec,
    write_episode,
    write_spec,
)
from worldflux.data.replay import Replay
from worldflux.envs import make_vector_env
from worldflux.errors import ConfigError, ShapeError


def _fill(replay: Replay, envs, steps: int) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    step = envs.step(None)
    replay.add(step)
    for _ in range(steps - 1):
        a = np.eye(envs.spec.action_dim, dtype=np.float32)[
            rng.integers(envs.spec.action_dim, size=envs.num_envs)
        ]
        step = envs.step(a)
        replay.add(step)


def test_images_are_stored_and_sampled_as_uint8() -> None:
    envs = make_vector_env({"suite": "dummy", "id": "discrete_image", "num_envs": 2}, seed=0)
    replay = Replay(envs.spec, capacity=200, num_streams=2)
    _fill(replay, envs, 40)
    batch = replay.sample(5, 8)
    assert replay.data["obs/obs"].dtype == np.uint8
    assert batch["obs"].dtype == np.uint8 and batch["obs"].shape == (5, 8, 3, 16, 16)
    assert batch["action"].shape == (5, 8, 4) and batch["action"].dtype == np.float32
    assert batch["reward"].shape == (5, 8) and batch["first"].dtype == bool


def test_sequences_are_consecutive_steps_of_one_environment() -> None:
    # Dummy obs encode the step counter t (pixel value t), so consecutive steps differ by one
    # within an episode and restart at 0 exactly where ``first`` is set.
    envs = make_vector_env(
        {"suite": "dummy", "id": "discrete_image", "num_envs": 3, "episode_length": 5}, seed=0
    )
    replay = Replay(envs.spec, capacity=300, num_streams=3)
    _fill(replay, envs, 60)
    batch = replay.sample(64, 12)
    t = batch["obs"][:, :, 0, 0, 0].astype(int)
    first = batch["first"]
    assert first.any(), "sequences must cross episode boundaries with first flags"
    assert (t[first] == 0).all()
    step = np.diff(t, axis=1)
    assert (step[~first[:, 1:]] == 1).all()
    # the action that led to a first step is zero
    assert not batch["action"][first].any()


def test_capacity_bounds_memory_and_keeps_the_newest_steps() -> None:
    envs = make_vector_env(
        {"suite": "dummy", "id": "discrete_vector", "num_envs": 2, "episode_length": 1000}, seed=0
    )
    replay = Replay(envs.spec, capacity=20, num_streams=2)
    _fill(replay, envs, 35)
    assert len(replay) == 20 and replay.total == 70
    t = replay.sample(32, 10)["obs"][..., 0] * 1000
    assert t.min() >= 34 - 10 - 0.5  # only the last 10 steps per stream remain


def test_sampling_needs_enough_steps() -> None:
    envs = make_vector_env({"suite": "dummy", "id": "discrete_vector"}, seed=0)
    replay = Replay(envs.spec, capacity=100, num_streams=1)
    _fill(replay, envs, 3)
    assert not replay.can_sample(4)
    with pytest.raises(ShapeError, match="length 4"):
        replay.sample(2, 4)
    with pytest.raises(ConfigError):
        Replay(envs.spec, capacity=1, num_streams=2)


@pytest.mark.parametrize("on_disk", [False, True])
def test_save_and_load_roundtrip(tmp_path, on_disk: bool) -> None:  # noqa: ANN001
    envs = make_vector_env({"suite": "dummy", "id": "continuous_image", "num_envs": 2}, seed=0)
    directory = tmp_path / "mmap" if on_disk else None
    replay = Replay(envs.spec, capacity=1000, num_streams=2, directory=directory, seed=3)
    _fill(replay, envs, 30)
    replay.save(tmp_path / "replay.npz")
    # a fresh buffer (same directory when on disk) restores counters, data and the sampler state
    restored = Replay(envs.spec, capacity=1000, num_streams=2, directory=directory, seed=99)
    restored.load(tmp_path / "replay.npz")
    assert len(restored) == len(replay) and restored.total == replay.total
    a, b = replay.sample(4, 6), restored.sample(4, 6)
    for key in ("obs", "action", "reward", "first"):
        np.testing.assert_array_equal(a[key], b[key])
    if not on_disk:
        assert (tmp_path / "replay.npz").stat().st_size < 200_000  # only the written rows


def test_dataset_roundtrip(tmp_path) -> None:  # noqa: ANN001
    envs = make_vector_env(
        {"suite": "dummy", "id": "discrete_image", "num_envs": 2, "episode_length": 6}, seed=0
    )
    recorder = EpisodeRecorder(envs.spec, envs.num_envs)
    write_spec(tmp_path, envs.spec)
    written = 0
    step = envs.step(None)
    recorder.add(step)
    while written < 4:
        step = envs.step(np.eye(4, dtype=np.float32)[[0, 1]])
        for ep in recorder.add(step):
            write_episode(tmp_path, written, ep)
            written += 1
    assert read_spec(tmp_path) == envs.spec
    replay = load_replay(tmp_path)
    assert len(replay) == 4 * 7  # reset step + 6 steps per episode
    batch = replay.sample(3, 7)
    assert batch["obs"].dtype == np.uint8 and batch["first"].sum() >= 3


def test_dataset_errors_name_the_problem(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="spec.json"):
        load_replay(tmp_path)


def test_a_killed_save_leaves_no_temporary_file_behind(tmp_path) -> None:  # noqa: ANN001
    fcntl = pytest.importorskip("fcntl")
    envs = make_vector_env({"suite": "dummy", "id": "discrete_vector"}, seed=0)
    replay = Replay(envs.spec, capacity=100)
    _fill(replay, envs, 5)
    stale = tmp_path / ".rank0-update00050.npz-x1y2.replay.tmp"  # a kill during np.savez
    stale.write_bytes(b"PK\x03")
    live = tmp_path / ".rank1-update00100.npz-a1b2.replay.tmp"  # another rank saving now
    live.write_bytes(b"PK\x03")
    with open(live, "rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        replay.save(tmp_path / "rank0-update00100.npz")
        assert not stale.exists() and live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "rank0-update00100.npz"]
