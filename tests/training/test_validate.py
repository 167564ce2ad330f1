"""CLI value validation: nonsense values of train/eval/collect give one clear line naming the key
and the expected value, never a traceback, and never a silent coercion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import worldflux.collect  # noqa: F401  (registers the dataset-folder resolver)
import worldflux.train  # noqa: F401  (registers the run-name resolver)
from worldflux.catalog import conf_dir
from worldflux.errors import ConfigError
from worldflux.training.validate import validate_config


def _compose(app: str, *overrides: str):  # noqa: ANN202
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(conf_dir()), version_base="1.3"):
            return compose(app, overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.env_steps=-5"], "data.env_steps=-5 (int) is invalid: expected an integer >= 1"),
        (["data.prefill=-1"], "data.prefill=-1 (int) is invalid: expected an integer >= 0"),
        (["data=offline", "data.path=x", "data.updates=-3"], "data.updates=-3"),
        (["data=offline"], "data.path is required"),
        (["callbacks.checkpoint.every_n_updates=0"], "callbacks.checkpoint.every_n_updates=0"),
        (["callbacks.checkpoint.every_n_updates=-1"], "expected an integer >= 1"),
        (["callbacks.metrics.every_n_updates=2.5"], "callbacks.metrics.every_n_updates=2.5"),
        (["++eval.every=0"], "eval.every=0 (int) is invalid: expected an integer >= 1"),
        (["++eval.episodes=-2"], "eval.episodes=-2"),
        (["++callbacks.checkpoint.keep_last=-1"], "callbacks.checkpoint.keep_last=-1"),
        (["seed=abc"], "seed='abc' (str) is invalid: expected an integer >= 0"),
        (["seed=1.5"], "seed=1.5 (float)"),
        (["seed=true"], "seed=True (bool)"),
        (["threads=abc"], "threads='abc' (str) is invalid: expected an integer >= 1 or null"),
        (["threads=0"], "threads=0"),
        (["data.env_steps=abc"], "data.env_steps='abc' (str)"),
        (["data.batch_size=0"], "data.batch_size=0"),
        (["data.train_ratio=-1"], "data.train_ratio=-1 (int) is invalid: expected a number > 0"),
        (["device=gpu"], "device='gpu' (str) is invalid: expected one of cpu, cuda, auto"),
        (["env.num_envs=0"], "env.num_envs=0"),
    ],
)
def test_train_values_are_validated(overrides: list[str], message: str) -> None:
    cfg = _compose("train", *overrides)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, "train")
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("app", "overrides", "message"),
    [
        ("collect", ["episodes=-1"], "episodes=-1 (int) is invalid: expected an integer >= 1"),
        ("collect", ["episodes=0"], "episodes=0"),
        ("collect", ["episodes=abc"], "episodes='abc' (str)"),
        ("collect", ["seed=abc"], "seed='abc'"),
        ("eval", [], "checkpoint is required"),
        ("eval", ["checkpoint=x", "episodes=abc"], "episodes='abc'"),
        ("eval", ["checkpoint=x", "fps=0"], "fps=0"),
    ],
)
def test_eval_and_collect_values_are_validated(
    app: str, overrides: list[str], message: str
) -> None:
    cfg = _compose(app, *overrides)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, app)
    assert message in str(err.value)


@pytest.mark.parametrize("app", ["train", "eval", "collect"])
def test_defaults_pass(app: str) -> None:
    validate_config(_compose(app, *(["checkpoint=x"] if app == "eval" else [])), app)


@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        ("train", ["data.env_steps=-5"], "data.env_steps=-5"),
        ("train", ["seed=abc"], "seed='abc'"),
        ("eval", ["checkpoint=x", "episodes=abc"], "episodes='abc'"),
        ("collect", ["episodes=-1"], "episodes=-1"),
    ],
)
def test_clis_print_one_line_and_exit_nonzero(
    tmp_path: Path, module: str, args: list[str], message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", f"worldflux.{module}", *args, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("error: ") and message in lines[0]


@pytest.mark.parametrize(
    "recipe", sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))
)
def test_every_recipe_passes(recipe: str) -> None:
    validate_config(_compose("train", f"experiment={recipe}"), "train")
