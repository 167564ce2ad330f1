"""Integrity of saved models: checksums, truncated or garbled files, missing files, weights that
do not fit; each is one ModelFileError naming the file, and one line from the eval CLI."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from worldflux import create_world_model
from worldflux.errors import ModelFileError


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _drop_checksum(path: Path) -> None:
    meta = json.loads((path / "metadata.json").read_text())
    del meta["weights_sha256"]
    (path / "metadata.json").write_text(json.dumps(meta))


def test_save_records_the_weights_checksum(saved_model: Path) -> None:
    meta = json.loads((saved_model / "metadata.json").read_text())
    digest = hashlib.sha256((saved_model / "model.safetensors").read_bytes()).hexdigest()
    assert meta["weights_sha256"] == digest


def test_flipped_bit_is_a_clear_error(saved_model: Path, tmp_path: Path) -> None:
    path = _copy(saved_model, tmp_path / "m")
    weights = path / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-5] ^= 0x01  # inside the last tensor: safetensors alone would load it silently
    weights.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match=r"model\.safetensors: checksum mismatch"):
        create_world_model(str(path))


@pytest.mark.parametrize("checksum", [True, False])
@pytest.mark.parametrize("damage", ["truncate", "garble", "empty"])
def test_truncated_or_garbled_weights(
    damage: str, checksum: bool, saved_model: Path, tmp_path: Path
) -> None:
    path = _copy(saved_model, tmp_path / "m")
    if not checksum:
        _drop_checksum(path)
    weights = path / "model.safetensors"
    raw = weights.read_bytes()
    new = {"truncate": raw[: len(raw) // 2], "garble": os.urandom(len(raw)), "empty": b""}[damage]
    weights.write_bytes(new)
    expected = "checksum mismatch" if checksum else "not a readable safetensors file"
    warns = pytest.warns(UserWarning) if not checksum else contextlib.nullcontext()
    with warns, pytest.raises(ModelFileError, match=expected) as err:
        create_world_model(str(path))
    assert err.value.path == str(weights)


@pytest.mark.parametrize("missing", ["model.safetensors", "metadata.json"])
def test_missing_files(missing: str, saved_model: Path, tmp_path: Path) -> None:
    path = _copy(saved_model, tmp_path / "m")
    (path / missing).unlink()
    with pytest.raises(ModelFileError, match=f"{missing}: .*missing"):
        create_world_model(str(path))


def test_directory_without_config(saved_model: Path, tmp_path: Path) -> None:
    path = _copy(saved_model, tmp_path / "m")
    (path / "config.yaml").unlink()
    with pytest.raises(ModelFileError, match="not a saved model"):
        create_world_model(str(path))


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("config.yaml", "family: [tdmpc2\n", "malformed YAML"),
        ("config.yaml", "", "lacks 'family'"),
        ("metadata.json", "{not json", "malformed JSON"),
        ("metadata.json", "[1, 2]", "JSON object"),
        ("metadata.json", '{"weights_sha256": "abc"}', "SHA-256"),
    ],
)
def test_malformed_text_files(
    name: str, text: str, match: str, saved_model: Path, tmp_path: Path
) -> None:
    path = _copy(saved_model, tmp_path / "m")
    (path / name).write_text(text)
    with pytest.raises(ModelFileError, match=f"{name}: .*{match}"):
        create_world_model(str(path))


def test_invalid_config_values_name_the_file(saved_model: Path, tmp_path: Path) -> None:
    path = _copy(saved_model, tmp_path / "m")
    data = yaml.safe_load((path / "config.yaml").read_text())
    data["latent_dim"] = "wide"
    (path / "config.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ModelFileError, match=r"config\.yaml: invalid saved config.*latent_dim"):
        create_world_model(str(path))


def test_weights_that_do_not_fit_the_config(saved_model: Path, tmp_path: Path) -> None:
    path = _copy(saved_model, tmp_path / "m")
    data = yaml.safe_load((path / "config.yaml").read_text())
    data["latent_dim"] = 2 * data["latent_dim"]
    (path / "config.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ModelFileError, match="do not fit") as err:
        create_world_model(str(path))
    text = str(err.value)
    assert "model.safetensors" in text and "shape mismatch" in text
    assert len(text) < 1500, "the error lists a few keys, not all of them"


def test_renamed_weights_are_listed_as_missing_and_unexpected(
    saved_model: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    path = _copy(saved_model, tmp_path / "m")
    _drop_checksum(path)
    state = load_file(str(path / "model.safetensors"))
    first = sorted(state)[0]
    state["renamed.weight"] = state.pop(first)
    save_file(state, str(path / "model.safetensors"))
    with pytest.warns(UserWarning), pytest.raises(ModelFileError) as err:
        create_world_model(str(path))
    text = str(err.value)
    assert f"missing (1): {first}" in text and "unexpected (1): renamed.weight" in text


def test_override_that_does_not_fit_the_weights(saved_model: Path) -> None:
    with pytest.raises(ModelFileError, match="shape mismatch"):
        create_world_model(str(saved_model), obs_shape=(5,))


def test_old_export_without_checksum_loads_with_a_warning(saved_model: Path, tmp_path) -> None:
    path = _copy(saved_model, tmp_path / "m")
    _drop_checksum(path)
    with pytest.warns(UserWarning, match="no weights checksum"):
        assert create_world_model(str(path)).config.family == "tdmpc2"


@pytest.mark.parametrize("damage", ["truncate", "garble", "empty"])
def test_damaged_checkpoint(damage: str, saved_checkpoint: Path, tmp_path: Path) -> None:
    raw = saved_checkpoint.read_bytes()
    new = {"truncate": raw[: len(raw) // 2], "garble": os.urandom(len(raw)), "empty": b""}[damage]
    path = tmp_path / "x.ckpt"
    path.write_bytes(new)
    with pytest.raises(ModelFileError, match=r"x\.ckpt: not a readable weights-only checkpoint"):
        create_world_model(str(path))


def test_random_bytes_are_always_a_model_file_error(tmp_path: Path) -> None:
    """Garbage reaches torch's legacy unpickler, which raises KeyError, IndexError, struct.error...
    (CI once drew a KeyError from ``os.urandom``): fixed seeds, every draw one ModelFileError."""
    import random

    from worldflux.loading import read_checkpoint

    path = tmp_path / "x.ckpt"
    for seed in range(300):
        rng = random.Random(seed)
        head = bytes([0x80, 2]) if seed % 2 else b""  # half start as a pickle protocol-2 stream
        path.write_bytes(head + rng.randbytes(rng.randrange(1, 4096)))
        with pytest.raises(ModelFileError, match="not a readable weights-only checkpoint"):
            read_checkpoint(path)


def test_checkpoint_of_something_else(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "x.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ModelFileError, match="no config hyperparameters"):
        create_world_model(str(path))
    torch.save([1, 2], path)
    with pytest.raises(ModelFileError, match="not a worldflux checkpoint"):
        create_world_model(str(path))


def test_eval_prints_one_line_for_a_corrupt_model(saved_model: Path, tmp_path: Path) -> None:
    path = _copy(saved_model, tmp_path / "m")
    weights = path / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-5] ^= 0x01
    weights.write_bytes(bytes(raw))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "worldflux.eval",
            f"checkpoint={path}",
            "env=dummy/discrete_vector",
            "episodes=1",
            "video=false",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ") and "model.safetensors: checksum mismatch" in out.stderr
