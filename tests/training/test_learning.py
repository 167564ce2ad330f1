"""The README's quick demo learns (about two minutes on a 2-core CPU: ``pytest -m slow``; the
default run checks the README's commands themselves in ``tests/test_readme.py``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quickstart_learns_catch(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "worldflux.train",
            "experiment=quickstart",
            "trainer.enable_progress_bar=false",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    match = re.search(r"^trained .*, return (-?\d+\.\d+)", text, re.MULTILINE)
    assert match, text[-2000:]
    # a random paddle scores about -2.4 on 4 balls; the trained agent averages above 0
    assert float(match[1]) > 0.0
    assert (tmp_path / "export" / "model.safetensors").is_file()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
