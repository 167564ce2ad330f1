"""The README's commands are the ones CI runs and run as written; its catalog matches the tree.

Every ``python -m worldflux.*`` line of the README's Training section is run (lines marked
``# GPU`` only on a CUDA machine), with the budget keys it sets shrunk to a few steps so the test
stays fast: the line's own groups, models, environments and options are what is checked.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

#: Budget keys replaced (or added) so each command finishes in seconds.
TINY = {
    "train": {
        "data.env_steps": "100",
        "data.prefill": "50",
        "data.batch_size": "8",
        "data.updates": "5",
        "eval.episodes": "1",
        "eval.every": "null",
        "callbacks.video": "null",
        "trainer.enable_progress_bar": "false",
        "threads": "1",
    },
    "eval": {"episodes": "1"},
    "collect": {"episodes": "3"},
}


def _commands(section: str = "## Training") -> list[str]:
    """The shell lines of the first ``bash`` block after ``section`` (continuations joined)."""
    text = README.split(section, 1)[1]
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def _shrink(command: str) -> list[list[str]]:
    """Each ``python -m worldflux.<app>`` of a line as argv, with :data:`TINY` budgets."""
    out = []
    for part in command.split("#", 1)[0].split("&&"):
        argv = shlex.split(part)
        app = argv[2].rsplit(".", 1)[-1]
        tiny = dict(TINY[app])
        args = []
        for arg in argv[3:]:
            key = arg.partition("=")[0]
            args.append(f"{key}={tiny.pop(key)}" if key in tiny and "," not in arg else arg)
        if app == "train" and "data=offline" in args:
            tiny = {
                k: v for k, v in tiny.items() if not k.startswith("data.") or k == "data.updates"
            }
        elif app == "train":
            tiny.pop("data.updates")
        out.append([sys.executable, *argv[1:3], *args, *(f"{k}={v}" for k, v in tiny.items())])
    return out


def _gpu(command: str) -> bool:
    return "# GPU" in command


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    command = next(line for line in ci if line.startswith("pip install") and "pytest" in line)
    assert command in README


def test_readme_catalog_is_generated_from_the_tree() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "catalog.py"), "--check", str(ROOT / "README.md")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_readme_links_stay_inside_the_repository() -> None:
    for target in re.findall(r"\]\(([^)#]+)\)", README) + re.findall(r"`(\.\./[^`]+)`", README):
        if target.startswith("http"):
            continue
        path = (ROOT / target).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), target


def test_device_cuda_lines_are_marked_gpu() -> None:
    lines = [c for c in _commands() if "device=cuda" in c]
    assert lines and all(_gpu(c) for c in lines)
    assert all("device=cuda" not in c for c in _commands() if not _gpu(c))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _params() -> list[Any]:
    """Each command; multi-process ones (DDP, multirun sweeps) in the ``slow`` run."""
    return [
        pytest.param(
            c,
            id=c.split("#")[0].strip()[:70],
            marks=[pytest.mark.slow] if "trainer=ddp" in c or "train -m " in c else [],
        )
        for c in _commands()
    ]


@pytest.mark.parametrize("command", _params())
def test_readme_training_command_runs(command: str, tmp_path: Path) -> None:
    import torch

    if _gpu(command) and not torch.cuda.is_available():
        pytest.skip("a GPU line")
    if "env=gym/" in command:
        pytest.importorskip("gymnasium")
    if "checkpoint=outputs/train/experiment-quickstart" in command:
        # The eval line reads the quick start's run: make a tiny one where the line looks.
        quick = _shrink("python -m worldflux.train experiment=quickstart")[0]
        run = tmp_path / "outputs" / "train" / "experiment-quickstart"
        done = subprocess.run(
            [*quick, f"hydra.run.dir={run}"],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    for argv in _shrink(command):
        done = subprocess.run(argv, cwd=tmp_path, env=_env(), capture_output=True, text=True)
        assert done.returncode == 0, f"{argv}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr
    if "worldflux.eval" in command:
        assert "episodes: return" in done.stdout
    elif "worldflux.train" in command:
        assert "trained " in done.stdout
        assert "data=offline" in command or "env steps" in done.stdout


def test_bare_train_is_a_small_default() -> None:
    from hydra import compose, initialize_config_dir

    from worldflux.catalog import conf_dir

    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("train")
    assert cfg.model.family == "tdmpc2" and cfg.model.mlp_dim <= 64  # the tiny preset
    assert cfg.data.env_steps <= 20_000 and cfg.env.obs == "vector"
