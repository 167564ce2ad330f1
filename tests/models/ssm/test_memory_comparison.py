"""Issue 13's comparison: a delay at which ``dreamerv3:size1m`` stays near chance and a small R2I
preset succeeds, both trained through ``python -m worldflux.train`` with the same data and budget.

Task: the embedded Memory environment in repeat mode, delay 4 (a random symbol of 2 every step;
from step 4 on each action must name the symbol shown 4 steps before: 12 scored answers of +-1
per 16-step episode, chance 50%, return 0). Budget: 12,000 updates of batch 8 x 32 at train
ratio 128 (24,500 environment steps, 500 of them random prefill), world-model learning rate
1e-3 for both (``experiment=memory_ssm`` and ``experiment=memory_dreamer``, conf/experiment/).
Each run is judged on 100 held-out episodes (``python -m worldflux.eval ... seed=12345``).

Recorded (docs/learning.md, ssm, "Delay 4: the comparison"): ``ssm:memory`` 12.000 +- 0 (100%,
1,200 answers, all right; 37 minutes on a loaded 2-core machine) after its world model left the
reward plateau at about 8,000 updates; ``dreamerv3:size1m`` near chance (see the docs for its
numbers; about 2 hours at one thread). ``ssm:ci`` itself (8 S5 blocks of 2 states, steps at most
0.1) did not learn delay 4 in 20,000 updates (docs, "Delay 4 at ten times the budget").

Slow: the SSM test takes 20 to 40 minutes on one CPU thread, the DreamerV3 one about 2 hours.
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


@pytest.mark.slow
def test_dreamerv3_size1m_stays_near_chance_at_delay_4(tmp_path: Path) -> None:
    success = held_out_success("memory_dreamer", tmp_path)
    # chance is 50% (return 0); at chance the return's standard deviation is about 4, so the
    # mean of 100 episodes has a standard error of about 0.4 (under 2 points of success rate).
    # Near chance: below 65%.
    assert success < 0.65, f"dreamerv3:size1m answered {success:.1%} right (near chance < 65%)"
