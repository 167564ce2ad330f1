"""R2I learns the Memory task (docs/learning.md, section "ssm"), through the real entry point.

Slow: 20 to 60 minutes each on one CPU thread. ``ssm:ci`` must answer the query well above chance
(success 50%, return 0; required: 80%, return >= 0.6) at the final evaluation.

* Delay 0 (cue, query, answer), 5,000 updates at lr 1e-3 / 3e-4, train ratio 128: recorded
  passing (evaluation return 1.0 from update 4,000 on; 200 held-out episodes all answered right).
* Delay 8 with the first recorded command (about 880 updates, reference learning rates): not
  reached (xfail). The world model needs thousands of updates to leave the plateau in which the
  reward ignores the cue (docs/learning.md, "Diagnosis"); this budget stops inside it.

* Repeat mode, delay 0 (name the symbol of the current step; the reward arrives one row later,
  so the world model must carry it one step), 2,000 updates: recorded passing (evaluation return
  16 of 16 at updates 1,750 and 2,000, and from 1,000 on with seed=1; 100 held-out episodes,
  1,600 answers, all right).

* Repeat mode, delay 2: with the preset's S5 layers (8 blocks of 2 states) not reached in 2,000
  updates (xfail). With one 16-state HiPPO block and steps in [0.1, 1] (``SPECTRUM``), 12,000
  updates: recorded passing (evaluation return 14 of 14 from update 8,000 on; 100 held-out
  episodes, 1,400 answers, all right; 21 minutes).

The issue's comparison (a delay where ``dreamerv3:size1m`` stays near chance and a small R2I
preset succeeds at the same budget) is not shown. ``dreamerv3:size1m`` learns delay 0 too, and
sooner (97.9% on 100 held-out episodes at 1,000 updates), and delay 4 at the budget where
``ssm:memory`` (this file's ``SPECTRUM`` setting as a preset) learns it (92.0% against 100% at
12,000 updates; ``test_ssm_memory_learning.py``; docs/learning.md, ssm, "Delay 4").
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

#: The recorded command of docs/learning.md (section "ssm"), minus the run directory.
COMMAND = [
    "model=ssm/ci",
    "env=memory",
    "env.delay=8",
    "data.batch_size=8",
    "data.batch_length=32",
    "data.train_ratio=32",
    "data.prefill=500",
    "data.env_steps=4000",
    "logger=csv",
    "device=cpu",
    "threads=1",
    "export=false",
    "eval.every=100",
    "eval.episodes=20",
    "eval.video=false",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


#: The recorded delay-0 run of docs/learning.md ("Diagnosis"), minus the delay and the run directory.
LEARNED = [
    "model=ssm/ci",
    "env=memory",
    "data.batch_size=8",
    "data.batch_length=32",
    "data.train_ratio=128",
    "data.prefill=500",
    "data.env_steps=10500",
    "model.model_lr=1e-3",
    "model.ssm_lr=1e-3",
    "model.actor_lr=3e-4",
    "model.critic_lr=3e-4",
    "logger=csv",
    "device=cpu",
    "threads=1",
    "export=false",
    "eval.every=500",
    "eval.episodes=20",
    "eval.video=false",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


#: The recorded repeat-mode run of docs/learning.md ("Repeat mode"), minus the delay and the run
#: directory: 16-step episodes, every action from step ``delay`` on scored +-1.
REPEAT = [
    "model=ssm/ci",
    "env=memory",
    "env.mode=repeat",
    "env.length=16",
    "data.batch_size=8",
    "data.batch_length=32",
    "data.train_ratio=128",
    "data.prefill=500",
    "data.env_steps=4500",
    "model.model_lr=1e-3",
    "model.ssm_lr=1e-3",
    "model.actor_lr=3e-4",
    "model.critic_lr=3e-4",
    "logger=csv",
    "device=cpu",
    "threads=1",
    "export=false",
    "eval.every=250",
    "eval.episodes=10",
    "eval.video=false",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def train(args: list[str], run_dir: Path) -> list[float]:
    """Run ``python -m worldflux.train`` with ``args``; the evaluation returns, in order."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "worldflux.train", *args, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3 * 3600,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    returns = eval_returns(run_dir)
    assert returns, "no evaluation was logged"
    return returns


def eval_returns(run_dir: Path) -> list[float]:
    """The ``eval/return`` column of a csv-logged run, in order."""
    (path,) = run_dir.glob("csv/**/metrics.csv") or run_dir.glob("**/metrics.csv")
    with path.open() as f:
        return [float(r["eval/return"]) for r in csv.DictReader(f) if r.get("eval/return")]


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0])
def test_ssm_ci_recalls_the_cue(tmp_path: Path, delay: int) -> None:
    returns = train([*LEARNED, f"env.delay={delay}"], tmp_path)
    # success rate (return + 1) / 2: chance is 50%; require at least 80% at the end
    assert returns[-1] >= 0.6, returns


@pytest.mark.slow
@pytest.mark.parametrize(
    "delay",
    [
        0,
        pytest.param(
            2,
            marks=pytest.mark.xfail(
                strict=False,
                reason="measured: 51% on 100 held-out episodes after 2,000 updates and 47% after "
                "12,000: the preset's S5 layers (8 HiPPO blocks of 2 states, dt <= 0.1) start as "
                "near-integrators, so the world model never holds the symbol 2 steps back and "
                "stays in the reward's XOR plateau (docs/learning.md, ssm, Memory path)",
            ),
        ),
    ],
)
def test_ssm_ci_repeats_the_symbol(tmp_path: Path, delay: int) -> None:
    returns = train([*REPEAT, f"env.delay={delay}"], tmp_path)
    scored = 16 - delay
    # success rate (return / scored + 1) / 2: chance is 50%; require at least 80% at the end
    assert returns[-1] >= 0.6 * scored, returns


@pytest.mark.slow
@pytest.mark.xfail(
    strict=False,
    reason="measured: +-0.3 at every evaluation (the same answer whatever the cue) after 300 to "
    "1,875 updates at delay 8; the world model leaves the XOR plateau only after thousands of "
    "updates (docs/learning.md, ssm, Diagnosis)",
)
def test_ssm_ci_recalls_the_cue_after_a_delay_of_8(tmp_path: Path) -> None:
    returns = train(COMMAND, tmp_path)
    # success rate (return + 1) / 2: chance is 50%; require at least 80% at the end
    assert returns[-1] >= 0.6, returns


#: ``ssm:ci`` with one 16-state HiPPO block and S5 steps in [0.1, 1] (docs/learning.md, ssm,
#: "Memory path"): the preset's 8 blocks of 2 states start as near-integrators that cannot tell
#: one past step from the next, which keeps the world model in the plateau at delay 2.
SPECTRUM = ["model.dynamics.blocks=1", "model.dynamics.dt_min=0.1", "model.dynamics.dt_max=1.0"]


@pytest.mark.slow
def test_ssm_ci_with_a_16_state_block_repeats_the_symbol_2_steps_back(tmp_path: Path) -> None:
    args = [*REPEAT, *SPECTRUM, "env.delay=2", "data.env_steps=24500", "eval.every=1000"]
    returns = train(args, tmp_path)
    # 12,000 updates; success rate (return / 14 + 1) / 2: chance 50%; require at least 80%
    assert returns[-1] >= 0.6 * 14, returns
