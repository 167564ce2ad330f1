"""Planners through the training entry point: TD-MPC2 with CEM learns the quick start, and
DreamerV3 trains while acting by latent planning."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLASSES = {"mppi": "MPPIPlanner", "cem": "CEMPlanner"}


def _train(tmp_path: Path, *overrides: str) -> str:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "worldflux.train",
            *overrides,
            "trainer.enable_progress_bar=false",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    return text


@pytest.mark.slow
def test_quickstart_learns_catch_with_cem(tmp_path: Path) -> None:
    """``experiment=quickstart planner=cem``: about 4 CPU-minutes (CEM's 512 x 6 samples per
    step cost more than the preset's 32 x 2 MPPI). Recorded: return 2.0 after 2000 env steps."""
    text = _train(tmp_path, "experiment=quickstart", "planner=cem")
    match = re.search(r"return (-?\d+\.\d+)", text)
    assert match, text[-2000:]
    # a random paddle scores about -2.4 on 4 balls; the planning agent averages above 0
    assert float(match[1]) > 0.0
    assert "CEMPlanner" in (tmp_path / "export" / "config.yaml").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("planner", ["mppi", "cem"])
def test_dreamer_trains_while_acting_by_planning(tmp_path: Path, planner: str) -> None:
    text = _train(
        tmp_path,
        "model=dreamer/ci",
        "env=catch",
        f"planner={planner}",
        "model.planner.num_samples=32",
        "model.planner.num_elites=4",
        "model.planner.iterations=2",
        "data.prefill=32",
        "data.env_steps=96",
        "data.capacity=2000",
        "device=cpu",
        "threads=1",
    )
    assert re.search(r"96 env steps", text), text[-2000:]
    config = (tmp_path / "export" / "config.yaml").read_text()
    assert f"worldflux.planning.{CLASSES[planner]}" in config
