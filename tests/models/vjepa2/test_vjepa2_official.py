"""Same weights, same outputs as facebookresearch/vjepa2 @ c2963a4 (slow; needs a checkout):
``VJEPA2_REF=/path/to/vjepa2 pytest -q -m slow tests/models/vjepa2/test_vjepa2_official.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
REF = os.environ.get("VJEPA2_REF")


@pytest.mark.slow
@pytest.mark.skipif(not REF, reason="set VJEPA2_REF to a facebookresearch/vjepa2 checkout")
def test_compare_script_finds_equal_counts_and_outputs() -> None:
    script = ROOT / "scripts" / "compare_vjepa2_official.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, str(script), "--ref", str(REF)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "| NO |" not in run.stdout
