"""``run_cli``: one error line and exit 2; the user's allow_targets extend the gate, a run's don't."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from worldflux.cli import EXIT_ERROR, run_cli
from worldflux.core.instantiate import resolve_target, user_prefixes
from worldflux.errors import ConfigError


def test_worldflux_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    def fail(cfg: object) -> None:
        raise ConfigError("first line\nsecond line")

    with pytest.raises(SystemExit) as exit_info:
        run_cli(fail, OmegaConf.create({}))
    assert exit_info.value.code == EXIT_ERROR == 2
    assert capsys.readouterr().err == "error: first line second line\n"


def test_other_exceptions_are_not_swallowed() -> None:
    def bug(cfg: object) -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run_cli(bug, OmegaConf.create({}))


def test_allow_targets_from_the_run_config() -> None:
    cfg = OmegaConf.create({"allow_targets": ["tests.security."]})
    name = "tests.security.components.LinearEncoder"
    assert run_cli(lambda c: resolve_target(name).__name__, cfg) == "LinearEncoder"
    assert user_prefixes() == ("tests.security",)


@pytest.mark.parametrize("value", [["os."], "subprocess", 5, ["torch"]])
def test_dangerous_allow_targets_exit_2(value: object, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda c: None, OmegaConf.create({"allow_targets": value}))
    assert exit_info.value.code == 2 and capsys.readouterr().err.startswith("error: ")
    assert user_prefixes() == ()


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WORLDFLUX_ALLOW_TARGETS"}
    # the user components live in this checkout's tests package
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=500
    )


@pytest.mark.slow
def test_user_component_trains_and_its_run_cannot_allow_itself(tmp_path: Path) -> None:
    """Train with a user encoder chosen on the command line from the user's own config folder;
    evaluating the run then needs the evaluator's own allow_targets (the run's do not count)."""
    group = tmp_path / "myconf" / "model" / "tdmpc2" / "encoder"
    group.mkdir(parents=True)
    (group / "linear.yaml").write_text(
        "_target_: tests.security.components.LinearEncoder\nwidth: 6\n"
    )
    train = _cli(
        [
            "-m",
            "worldflux.train",
            "model=tdmpc2/ci",
            "env=dummy/continuous_vector",
            f"hydra.searchpath=[file://{tmp_path / 'myconf'}]",
            "model/tdmpc2/encoder@model.encoder=linear",
            "allow_targets=[tests.security.]",
            "data.env_steps=30",
            "data.prefill=15",
            "logger=none",
            "threads=1",
            "trainer.enable_progress_bar=false",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        tmp_path,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    saved = (tmp_path / "run" / "export" / "config.yaml").read_text()
    assert "LinearEncoder" in saved and "mults" not in saved
    assert "tests.security." in (tmp_path / "run" / ".hydra" / "config.yaml").read_text()

    evaluate = ["-m", "worldflux.eval", f"checkpoint={tmp_path / 'run'}", "episodes=1"]
    refused = _cli([*evaluate, "video=false"], tmp_path)
    assert refused.returncode == 2 and "allow_targets" in refused.stderr, refused.stderr[-3000:]
    allowed = _cli([*evaluate, "video=false", "allow_targets=[tests.security.]"], tmp_path)
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    assert "1 episodes: return" in allowed.stdout
