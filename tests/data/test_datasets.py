"""Offline datasets survive kills: torn temporary files, unlisted episodes, damaged manifests,
episodes of the wrong shape, one environment per directory, and the writer's lock."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from worldflux.data import storage
from worldflux.data.episodes import (
    EPISODES,
    MANIFEST_FILE,
    EpisodeRecorder,
    episodes,
    load_replay,
    write_episode,
)
from worldflux.data.writer import DatasetWriter
from worldflux.envs import make_vector_env
from worldflux.errors import ConfigError

VECTOR = {"suite": "embedded", "id": "catch", "obs": "vector", "action": "continuous"}
IMAGE = {"suite": "embedded", "id": "catch", "obs": "image", "action": "discrete"}


def _episodes(env: dict, n: int, seed: int = 0) -> tuple[object, list[dict[str, np.ndarray]]]:
    envs = make_vector_env({**env, "num_envs": 1}, seed=seed)
    recorder = EpisodeRecorder(envs.spec, 1)
    rng = np.random.default_rng(seed)
    out: list[dict[str, np.ndarray]] = []
    recorder.add(envs.step(None))
    while len(out) < n:
        if envs.spec.action_kind == "discrete":
            action = np.eye(envs.spec.action_dim, dtype=np.float32)[rng.integers(3, size=1)]
        else:
            action = rng.uniform(-1, 1, size=(1, envs.spec.action_dim)).astype(np.float32)
        out += recorder.add(envs.step(action))
    envs.close()
    return envs.spec, out[:n]


def _write(path: Path, env: dict, n: int, seed: int = 0) -> DatasetWriter:
    spec, eps = _episodes(env, n, seed)
    with DatasetWriter(path, spec, env, {"seed": seed}) as writer:
        for ep in eps:
            writer.add(ep)
    return writer


def test_a_torn_temporary_file_is_ignored_and_cleaned(tmp_path: Path) -> None:
    _write(tmp_path, VECTOR, 2)
    # What a kill in the middle of np.savez leaves: a truncated zip under a temporary name,
    # plus the temporary names of earlier versions that readers once globbed as episodes.
    torn = [tmp_path / EPISODES / ".000002-abc.tmp", tmp_path / EPISODES / "tmpx1.tmp.npz"]
    for file in torn:
        file.write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / f".{MANIFEST_FILE}-q.tmp").write_text('{"episodes": [')
    replay = load_replay(tmp_path)
    assert len(replay) == 2 * 29
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def test_temporary_files_of_a_live_writer_are_left_alone(tmp_path: Path) -> None:
    _write(tmp_path, VECTOR, 2)
    spec, eps = _episodes(VECTOR, 1, seed=5)
    with DatasetWriter(tmp_path, spec, VECTOR) as writer:
        live = tmp_path / EPISODES / ".000009-live.tmp"
        live.write_bytes(b"being written")
        assert len(load_replay(tmp_path)) == 2 * 29  # reading works while collecting...
        assert live.is_file()  # ...and never deletes what the writer is filling
        writer.add(eps[0])
    assert len(load_replay(tmp_path)) == 3 * 29 and not live.exists()


def test_an_episode_renamed_before_the_manifest_update_is_kept(tmp_path: Path) -> None:
    _write(tmp_path, VECTOR, 2)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    manifest["episodes"] = manifest["episodes"][:1]  # the kill came before the manifest write
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert [e.index for e in episodes(tmp_path)] == [0, 1]
    writer = _write(tmp_path, VECTOR, 1, seed=1)  # the next collect adopts it and appends
    assert writer.existing == 2
    listed = json.loads((tmp_path / MANIFEST_FILE).read_text())["episodes"]
    assert [e["file"] for e in listed] == ["000000-29.npz", "000001-29.npz", "000002-29.npz"]


def test_a_listed_episode_that_is_gone_is_a_clear_error(tmp_path: Path) -> None:
    _write(tmp_path, VECTOR, 2)
    (tmp_path / EPISODES / "000001-29.npz").unlink()
    with pytest.raises(ConfigError, match=r"lists episodes/000001-29\.npz, which is missing"):
        load_replay(tmp_path)


def test_episodes_that_disagree_with_the_spec_are_a_clear_error(tmp_path: Path) -> None:
    _write(tmp_path, VECTOR, 1)
    _, image = _episodes(IMAGE, 1)
    write_episode(tmp_path, 1, image[0])  # bypasses the writer's environment check
    with pytest.raises(ConfigError, match=r"000001-29\.npz: field 'obs/obs' has shape") as err:
        load_replay(tmp_path)
    assert "(29, 3)" in str(err.value)


def test_a_dataset_without_finished_episodes_is_a_clear_error(tmp_path: Path) -> None:
    spec, _ = _episodes(VECTOR, 1)
    with DatasetWriter(tmp_path, spec, VECTOR):
        pass  # killed before the first episode ended
    with pytest.raises(ConfigError, match="holds no finished episodes"):
        load_replay(tmp_path)


def test_another_environment_is_refused_naming_both(tmp_path: Path) -> None:
    _write(tmp_path, VECTOR, 1)
    spec, _ = _episodes(IMAGE, 1)
    with pytest.raises(ConfigError) as err, DatasetWriter(tmp_path, spec, IMAGE):
        pass
    message = str(err.value)
    assert "obs='vector'" in message and "obs='image'" in message and "refusing" in message
    assert len(episodes(tmp_path)) == 1  # nothing was overwritten
    # the same spaces with another env knob (balls per episode) are another environment too
    spec, _ = _episodes(VECTOR, 1)
    with (
        pytest.raises(ConfigError, match="balls"),
        DatasetWriter(tmp_path, spec, {**VECTOR, "balls": 2}),
    ):
        pass


def test_two_writers_of_one_directory_are_refused(tmp_path: Path) -> None:
    spec, _ = _episodes(VECTOR, 1)
    with (
        DatasetWriter(tmp_path, spec, VECTOR),
        pytest.raises(ConfigError, match="another"),
        DatasetWriter(tmp_path, spec, VECTOR, lock_timeout=0.2),
    ):
        pass


def test_a_read_only_dataset_is_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, VECTOR, 2)
    torn = tmp_path / EPISODES / ".000002-abc.tmp"
    torn.write_bytes(b"PK")

    def refuse(path: object, *args: object) -> int:
        raise PermissionError(13, "Read-only file system", str(path))

    # Root can write anywhere, so refuse the lock file the way a read-only mount would.
    monkeypatch.setattr(storage.os, "open", refuse)
    assert len(load_replay(tmp_path)) == 2 * 29  # readable; the temp file is simply ignored
    assert torn.exists()
    spec, _ = _episodes(VECTOR, 1)
    with (
        pytest.raises(ConfigError, match="cannot write the dataset"),
        DatasetWriter(tmp_path, spec, VECTOR),
    ):
        pass
