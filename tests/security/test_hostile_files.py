"""A corpus of hostile saved models, checkpoints and run directories.

Each payload tries to create the ``sentinel`` file; loading must refuse it with a
:class:`~worldflux.errors.WorldFluxError` (through ``create_world_model`` and
``python -m worldflux.eval``) and the sentinel must never appear. Loaded files must not be able
to widen the gate either.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from worldflux import create_world_model
from worldflux.errors import ModelFileError, UnsafeTargetError, WorldFluxError

Tamper = Callable[[dict[str, Any], Path], Any]


class _Payload:
    """Pickles to ``os.system("touch <sentinel>")``: what ``weights_only`` must refuse."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.sentinel}",))


def _touch(sentinel: Path) -> dict[str, Any]:
    return {"_target_": "subprocess.call", "args": ["touch", str(sentinel)]}


def _set_slot(data: dict[str, Any], node: dict[str, Any]) -> None:
    data["encoder"] = node


#: Edits of a saved config (``config.yaml`` or a checkpoint's hyperparameters); each returns the
#: edited mapping.
CONFIG_TAMPERS: dict[str, Tamper] = {
    "top_os_system": lambda d, s: {**d, "_target_": "os.system"},
    "top_popen_reexport": lambda d, s: {**d, "_target_": "worldflux.backends.subprocess.Popen"},
    "top_module_chain": lambda d, s: {**d, "_target_": "torch.nn.functional.torch.hub.load"},
    "top_not_a_model": lambda d, s: {**d, "_target_": "worldflux.training.loggers.csv"},
    "top_builtin_eval": lambda d, s: {**d, "_target_": "builtins.eval"},
    "component_subprocess": lambda d, s: {**d, "encoder": _touch(s)},
    "component_module_chain": lambda d, s: {
        **d,
        "encoder": {"_target_": "torch.nn.modules.module.torch.hub.load", "repo": str(s)},
    },
    "component_partial": lambda d, s: {**d, "encoder": {**d["encoder"], "_partial_": True}},
    "component_args": lambda d, s: {**d, "encoder": {**d["encoder"], "_args_": [str(s)]}},
    "nested_target_in_data": lambda d, s: {**d, "observation_modalities": {"x": _touch(s)}},
    "interpolation": lambda d, s: {**d, "family": "${oc.env:HOME}"},
    "adds_allow_prefix": lambda d, s: {
        **d,
        "allow_targets": ["tests.security."],
        "encoder": {"_target_": "tests.security.components.LinearEncoder"},
    },
    "user_component_unallowed": lambda d, s: {
        **d,
        "encoder": {"_target_": "tests.security.components.LinearEncoder"},
    },
    "unknown_family": lambda d, s: {**d, "family": "os"},
    "not_a_mapping": lambda d, s: ["_target_", "os.system"],
}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("case", sorted(CONFIG_TAMPERS))
def test_tampered_config_yaml(case: str, saved_model: Path, tmp_path: Path, sentinel: Path) -> None:
    path = _copy(saved_model, tmp_path / "m")
    data = yaml.safe_load((path / "config.yaml").read_text())
    (path / "config.yaml").write_text(yaml.safe_dump(CONFIG_TAMPERS[case](data, sentinel)))
    with pytest.raises(WorldFluxError, match="config.yaml") as err:
        create_world_model(str(path))
    assert isinstance(err.value, (ModelFileError, UnsafeTargetError))


@pytest.mark.parametrize(
    "text",
    [
        "!!python/object/apply:os.system ['touch {s}']\n",
        "_target_: !!python/name:os.system ''\nfamily: tdmpc2\n",
        "family: tdmpc2\n_target_: [unclosed\n",
        "\x00\x01binary",
    ],
)
def test_yaml_tags_and_garbage(text: str, saved_model: Path, tmp_path: Path, sentinel) -> None:
    path = _copy(saved_model, tmp_path / "m")
    (path / "config.yaml").write_text(text.format(s=sentinel))
    with pytest.raises(ModelFileError, match="config.yaml"):
        create_world_model(str(path))


def _write_ckpt(src: Path, dst: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    edit(ckpt)
    torch.save(ckpt, dst)
    return dst


@pytest.mark.parametrize("case", sorted(CONFIG_TAMPERS))
def test_tampered_checkpoint_hyperparameters(
    case: str, saved_checkpoint: Path, tmp_path: Path, sentinel: Path
) -> None:
    def edit(ckpt: dict[str, Any]) -> None:
        hp = ckpt["hyper_parameters"]
        hp["config"] = CONFIG_TAMPERS[case](copy.deepcopy(hp["config"]), sentinel)

    path = _write_ckpt(saved_checkpoint, tmp_path / "x.ckpt", edit)
    with pytest.raises(WorldFluxError, match="x.ckpt"):
        create_world_model(str(path))
    _load_from_checkpoint_refuses(path)


def _load_from_checkpoint_refuses(path: Path) -> None:
    from worldflux.models.tdmpc2.module import TDMPC2

    try:
        model = TDMPC2.load_from_checkpoint(path)
    except WorldFluxError as err:
        assert "x.ckpt" in str(err)
        return
    # Lightning passes only ``config`` to the class it is called on: a tampered top-level
    # _target_ is ignored, and the parts are built through the gate.
    assert type(model) is TDMPC2 and type(model.encoder).__module__.startswith("worldflux.")


@pytest.mark.parametrize("where", ["top", "hparams", "state_dict"])
def test_pickled_code_in_checkpoint(
    where: str, saved_checkpoint: Path, tmp_path: Path, sentinel: Path
) -> None:
    def edit(ckpt: dict[str, Any]) -> None:
        target = {"top": ckpt, "hparams": ckpt["hyper_parameters"], "state_dict": ckpt}[where]
        target["payload" if where != "state_dict" else "state_dict"] = (
            _Payload(sentinel) if where != "state_dict" else {"w": _Payload(sentinel)}
        )

    path = _write_ckpt(saved_checkpoint, tmp_path / "x.ckpt", edit)
    with pytest.raises(ModelFileError, match="weights-only"):
        create_world_model(str(path))
    _load_from_checkpoint_refuses(path)


def test_lightning_instantiator_in_checkpoint(
    saved_checkpoint: Path, tmp_path: Path, sentinel: Path
) -> None:
    def edit(ckpt: dict[str, Any]) -> None:
        ckpt["hyper_parameters"]["_instantiator"] = "os.system"

    path = _write_ckpt(saved_checkpoint, tmp_path / "x.ckpt", edit)
    _load_from_checkpoint_refuses(path)
    assert create_world_model(str(path)).config.family == "tdmpc2"  # the key is ignored


def test_tampered_metadata(saved_model: Path, tmp_path: Path, sentinel: Path) -> None:
    path = _copy(saved_model, tmp_path / "m")
    meta = json.loads((path / "metadata.json").read_text())
    meta.update({"class": "os.system", "family": "os", "model_id": "${oc.env:HOME}"})
    (path / "metadata.json").write_text(json.dumps(meta))
    assert create_world_model(str(path)).config.family == "tdmpc2"  # metadata is never code
    (path / "metadata.json").write_text('{"weights_sha256": ')
    with pytest.raises(ModelFileError, match="metadata.json"):
        create_world_model(str(path))


def test_gate_prefixes_survive_loading_unchanged(saved_model: Path, tmp_path: Path) -> None:
    from worldflux.core.instantiate import user_prefixes

    path = _copy(saved_model, tmp_path / "m")
    data = yaml.safe_load((path / "config.yaml").read_text())
    data["allow_targets"] = ["tests."]
    (path / "config.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ModelFileError, match="allow_targets"):
        create_world_model(str(path))
    assert user_prefixes() == ()


# ---------------------------------------------------------------------------- the eval CLI
def _run_dir(saved_model: Path, root: Path, env: dict[str, Any]) -> Path:
    run = root / "run"
    _copy(saved_model, run / "export")
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"env": env, "seed": 0}))
    return run


def _eval(run: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WORLDFLUX_ALLOW_TARGETS"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "worldflux.eval",
            "checkpoint=.",
            "episodes=1",
            "video=false",
            *args,
        ],
        cwd=run,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_eval_refuses_hostile_run_directory(saved_model: Path, tmp_path: Path, sentinel) -> None:
    """A downloaded run: its env id imports a module shipped in the run; its export is tampered."""
    run = _run_dir(saved_model, tmp_path, {"suite": "gym", "id": "evilmod:Evil-v0"})
    (run / "evilmod.py").write_text(f"open({str(sentinel)!r}, 'w').close()\n")
    out = _eval(run)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == [out.stderr.strip()], out.stderr[-2000:]
    assert out.stderr.startswith("error: ") and "evilmod:Evil-v0" in out.stderr
    assert "Traceback" not in out.stderr

    (run / ".hydra" / "config.yaml").write_text(
        yaml.safe_dump({"env": {"suite": "dummy", "id": "discrete_vector"}})
    )
    data = yaml.safe_load((run / "export" / "config.yaml").read_text())
    data["_target_"] = "worldflux.backends.subprocess.Popen"
    data["args"] = ["touch", str(sentinel)]
    (run / "export" / "config.yaml").write_text(yaml.safe_dump(data))
    out = _eval(run)
    assert out.returncode == 2 and out.stderr.startswith("error: "), out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "config.yaml" in out.stderr


# ---------------------------------------------------------------------------- resource traps
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("config.yaml", BOMB),
        ("config.yaml", "[" * 100_000),
        ("metadata.json", "[" * 100_000),
        ("config.yaml", "/dev/zero"),
        ("model.safetensors", "/dev/zero"),
        ("metadata.json", "/dev/urandom"),
        ("model.safetensors", "directory"),
    ],
)
def test_files_that_never_end_or_explode(
    name: str, content: str, saved_model: Path, tmp_path: Path
) -> None:
    path = _copy(saved_model, tmp_path / "m")
    target = path / name
    target.unlink()
    if content.startswith("/dev/"):
        target.symlink_to(content)
    elif content == "directory":
        target.mkdir()
    else:
        target.write_text(content)
    with pytest.raises(ModelFileError, match=name):
        create_world_model(str(path))


def test_run_env_of_a_missing_path_names_it(tmp_path: Path) -> None:
    from worldflux.loading import load_run_env

    with pytest.raises(ModelFileError, match="no saved model"):
        load_run_env(tmp_path / "nope")
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    (tmp_path / "run" / ".hydra" / "config.yaml").write_text("env: {suite: os, id: x}\n")
    with pytest.raises(ModelFileError, match=r"env\.suite 'os'"):
        load_run_env(tmp_path / "run")
    (tmp_path / "run" / ".hydra" / "config.yaml").write_text("env: {suite: gym, id: '${x}'}\n")
    with pytest.raises(ModelFileError, match="interpolation"):
        load_run_env(tmp_path / "run")
    (tmp_path / "run" / ".hydra" / "config.yaml").write_text(
        "env: {suite: dummy, id: discrete_vector}\n"
    )
    assert load_run_env(tmp_path / "run") == {"suite": "dummy", "id": "discrete_vector"}
