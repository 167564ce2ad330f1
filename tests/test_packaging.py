"""The built wheel ships conf/ and works without the source checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_conf_and_composes_outside_checkout(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
    )
    wheel = next((tmp_path / "dist").glob("worldflux-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "worldflux/conf/model/dreamerv3/size12m.yaml" in names
    assert "worldflux/conf/model/dreamer.yaml" in names
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
    )
    code = (
        "import worldflux, sys; assert worldflux.__file__.startswith(sys.argv[1]), worldflux.__file__;"
        "print(worldflux.get_config('dreamer').deter_dim);"
        "m = worldflux.create_world_model('tdmpc2:ci'); print(type(m).__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(site)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert out.stdout.split() == ["2048", "TDMPC2"]
