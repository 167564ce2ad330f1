"""The README's commands are the ones CI runs; its catalog table matches the config tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    command = next(line for line in ci if line.startswith("pip install") and "pytest" in line)
    assert command in (ROOT / "README.md").read_text()


def test_readme_catalog_is_generated_from_the_tree() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "catalog.py"), "--check", str(ROOT / "README.md")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
