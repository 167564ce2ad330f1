"""``ssm:memory`` learns the embedded Memory task's repeat mode at delay 4 through
``python -m worldflux.train experiment=memory_ssm`` (docs/learning.md, ssm, "Delay 4").

Task: a random symbol of 2 every step; from step 4 on each action must name the symbol shown 4
steps before (12 scored answers of +-1 per 16-step episode, chance 50%, return 0). Budget: 12,000
updates of batch 8 x 32 at train ratio 128 (24,500 environment steps, 500 of them random
prefill), world-model learning rate 1e-3. Judged on 100 held-out episodes (``python -m
worldflux.eval ... seed=12345``).

Recorded: 12.000 +- 0 (100%, 1,200 answers, all right; 38 minutes on a loaded 2-core machine),
after the world model left the reward plateau at about 8,000 updates. ``ssm:ci`` itself (8 S5
blocks of 2 states, steps at most 0.1) did not learn delay 4 in 20,000 updates.

This is not the issue's comparison: ``dreamerv3:size1m`` with the same data and budget
(``experiment=memory_dreamer``) learns delay 4 too (92.0% on the same 100 held-out episodes at
12,000 updates; its world model left the plateau at about 8,250 updates), so delay 4 is not a
delay at which it stays near chance. At delay 8 ``ssm:memory`` stays at chance in 12,000 updates.

Slow: 20 to 40 minutes on one CPU thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

QUIET = ["logger=csv", "export=false", "trainer.enable_progress_bar=false"]
SCORED = 16 - 4  # answers per episode at delay 4


def run(module: str, args: list[str], run_dir: Path) -> None:
    """``python -m <module> <args> hydra.run.dir=<run_dir>``; fails the test on a non-zero exit."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=4 * 3600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def held_out_success(experiment: str, tmp_path: Path) -> float:
    """Train ``experiment`` for its whole budget; its success rate on 100 held-out episodes."""
    run("worldflux.train", [f"experiment={experiment}", *QUIET], tmp_path / "train")
    ckpt = tmp_path / "train" / "checkpoints" / "last.ckpt"
    run(
        "worldflux.eval",
        [f"checkpoint={ckpt}", "episodes=100", "seed=12345", "video=false", "device=cpu"],
        tmp_path / "eval",
    )
    result = json.loads((tmp_path / "eval" / "returns.json").read_text())
    assert len(result["returns"]) == 100
    return (result["mean"] / SCORED + 1) / 2


@pytest.mark.slow
def test_ssm_memory_repeats_the_symbol_4_steps_back(tmp_path: Path) -> None:
    success = held_out_success("memory_ssm", tmp_path)
    assert success >= 0.8, f"ssm:memory answered {success:.1%} right on 100 held-out episodes"
