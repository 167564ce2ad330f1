"""The command line: typo suggestions, --help, console scripts, no empty run folders, file modes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

from worldflux.cli import help_text, remove_if_empty, unknown_override

ROOT = Path(__file__).resolve().parents[1]


def _run(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_misspelled_key_gets_a_suggestion() -> None:
    message = unknown_override(["data.env_step=3"])
    assert message is not None and "Did you mean 'data.env_steps'" in message
    assert unknown_override(["experiment=quickstart", "data.env_steps=3", "eval.every=2"]) is None
    assert unknown_override(["+data.new_key=1", "seed=0,1", "hydra.run.dir=x"]) is None
    assert unknown_override(["data=offline", "data.path=some/dir"]) is None  # a ??? value


def test_command_line_typo_is_one_line_with_the_close_match(tmp_path: Path) -> None:
    out = _run("worldflux.train", "sed=3", cwd=tmp_path)
    assert out.returncode == 2
    assert "Did you mean 'seed'" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "outputs").exists()


def test_help_lists_models_not_base_or_component_files() -> None:
    text = help_text()
    model_lines = text.split("model (")[1].split("\n\n")[0]
    assert "tdmpc2/ci" in model_lines and "dreamerv3/size12m" in model_lines
    # a family base is listed only when it is itself a preset (a meta block, e.g. token/base)
    assert "dreamerv3/base" not in model_lines and "tdmpc2/base" not in model_lines
    assert "token/base" in model_lines and "encoder" not in model_lines
    assert "hparams_search: tdmpc2_optuna" in text


def test_failed_run_leaves_no_empty_run_folder(tmp_path: Path) -> None:
    out = _run("worldflux.train", "env.id=cach", "hydra.run.dir=run", cwd=tmp_path)
    assert out.returncode == 2 and "Did you mean 'catch'" in out.stderr
    assert not (tmp_path / "run").exists()


def test_remove_if_empty_keeps_a_run_with_results(tmp_path: Path) -> None:
    (tmp_path / ".hydra").mkdir()
    (tmp_path / "checkpoints").mkdir()
    assert not remove_if_empty(tmp_path) and tmp_path.exists()


def test_eval_without_checkpoint_is_one_clear_line(tmp_path: Path) -> None:
    out = _run("worldflux.eval", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: eval needs checkpoint=")
    assert "Traceback" not in out.stderr
    assert not list(tmp_path.rglob("outputs/eval/*"))  # no empty eval folder left behind


def test_console_scripts_are_declared() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {
        "worldflux-train": "worldflux.train:main",
        "worldflux-eval": "worldflux.eval:main",
        "worldflux-collect": "worldflux.collect:main",
        "worldflux-compare": "worldflux.compare.app:main",
    }
    readme = (ROOT / "README.md").read_text()
    assert all(name in readme for name in scripts)


def test_exported_files_honour_the_umask(tmp_path: Path) -> None:
    from worldflux import create_world_model

    old = os.umask(0o022)
    try:
        model = create_world_model("tdmpc2:ci")
        out = model.save_pretrained(tmp_path / "export")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in Path(out).iterdir()}
    assert modes and all(mode == 0o644 for mode in modes.values()), modes


def test_optuna_example_is_named_for_what_it_runs() -> None:
    conf = ROOT / "conf" / "hparams_search"
    assert not (conf / "dreamer_optuna.yaml").exists()
    doc = yaml.safe_load((conf / "tdmpc2_optuna.yaml").read_text())
    assert "seed" not in doc["hydra"]["sweeper"]["params"]
    # Each sweep has its own folder: the study name and the start time are in the path.
    sweep_dir = doc["hydra"]["sweep"]["dir"]
    assert "${hydra.sweeper.study_name}" in sweep_dir and "${now:" in sweep_dir
    experiment = (conf / "tdmpc2_optuna.yaml").read_text().split("experiment=")[1].split()[0]
    recipe = yaml.safe_load((ROOT / "conf" / "experiment" / f"{experiment}.yaml").read_text())
    assert {"override /model": "tdmpc2/ci"} in recipe["defaults"]


@pytest.mark.parametrize("name", ["wandb", "mlflow", "video"])
def test_optional_extras_exist(name: str) -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert name in extras["optional-dependencies"]


def test_tdmpc2_ci_on_pixels_is_a_clear_error() -> None:
    from worldflux import create_world_model
    from worldflux.errors import ConfigError

    with pytest.raises(ConfigError, match="sized for vector observations"):
        create_world_model("tdmpc2:ci", obs_shape=(3, 64, 64), action_dim=1)


def test_cartpole_pixels_without_pygame_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gymnasium")
    from worldflux.envs.registry import env_spec
    from worldflux.errors import ConfigError

    monkeypatch.setitem(sys.modules, "pygame", None)  # as if pygame were not installed
    with pytest.raises(ConfigError, match="renders pixels.*env.obs=vector"):
        env_spec({"suite": "gym", "id": "CartPole-v1", "obs": "image", "num_envs": 1})
