"""IRIS (family ``token``) learns on the embedded Catch pixels (slow: about 40 minutes on a CPU).

The criteria of issue 11, through ``python -m worldflux.train model=token/ci`` on 16x16 Catch
(a 4 x 4 grid, so that every cell is one token):
the tokenizer's reconstruction error falls; the world model's next-token accuracy on held-out
episodes (seeds the training never used) is well above chance (1 / vocab_size) and above
predicting that every token repeats the previous frame's; the agent's return on held-out
episodes beats a uniformly random policy on the same episodes. The recipe and the measured
numbers are in docs/learning.md ("token (IRIS) on Catch pixels").
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
#: The recipe of docs/learning.md (section "token (IRIS) on Catch pixels").
RECIPE = [
    "model=token/ci",
    "env=catch",
    "env.size=16",
    "env.rows=4",
    "env.cols=4",
    "model.tokenizer_batch_size=32",
    "model.wm_batch_size=32",
    "model.ac_batch_size=16",
    "model.max_blocks=8",
    "model.batch_length=9",
    "model.burn_in=4",
    "model.imagine_horizon=8",
    "model.lr=1e-3",
    "model.num_layers=2",
    "model.wm_embed_dim=64",
    "model.wm_start=1500",
    "model.ac_start=6000",
    "+model.phases.tokenizer.anneal=300",
    "+model.phases.tokenizer.total_steps=1000",
    "model.batch_size=16",
    "data.train_ratio=144",
    "data.prefill=500",
    "data.env_steps=8500",
    "eval.every=500",
    "eval.episodes=20",
    "eval.video=false",
    # worldflux's cell tokenizer (each token sees its own 4 x 4 cell), no GPT dropout, IRIS's
    # actor-critic width (docs/learning.md, token, seventh session)
    "model.tokenizer._target_=worldflux.models.token.tokenizer.CellTokenizer",
    "model.norm_groups=1",
    "model.commitment_beta=0.1",
    "model.embed_pdrop=0.0",
    "model.resid_pdrop=0.0",
    "model.attn_pdrop=0.0",
    "model.ac_channels=[32,32,64,64]",
    "model.lstm_dim=512",
]
HELD_OUT_EPISODES = 50
#: The Catch geometry of the recipe: 4 x 4 cells of 4 x 4 pixels, one cell per token.
GEOMETRY = {"size": 16, "rows": 4, "cols": 4}


def _column(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the recipe once; the metrics and the final model."""
    from worldflux import create_world_model

    run_dir = tmp_path_factory.mktemp("token_catch")
    command = [
        sys.executable, "-m", "worldflux.train", *RECIPE, "logger=csv", "device=cpu",
        "threads=1", "export=false", "trainer.enable_progress_bar=false",
        f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=5400, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    with open(run_dir / "csv" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    model = create_world_model(str(run_dir / "checkpoints" / "last.ckpt"))
    return {"rows": rows, "model": model}


@pytest.mark.slow
def test_tokenizer_and_world_model_learn_held_out_catch(trained: dict[str, Any]) -> None:
    from worldflux.models.token.evaluate import catch_episodes, held_out_accuracy

    rec = _column(trained["rows"], "train/loss/reconstruction")
    assert sum(rec[-5:]) / 5 < 0.5 * sum(rec[:3]) / 3, "reconstruction error did not fall"
    scores = held_out_accuracy(trained["model"], catch_episodes(HELD_OUT_EPISODES, **GEOMETRY))
    print("token held-out:", scores, "reconstruction first/last:", rec[:3], rec[-5:])
    assert scores["token_accuracy"] > 10 * scores["chance"], scores
    assert scores["token_accuracy"] > scores["copy_accuracy"] + 0.02, scores


@pytest.mark.slow
def test_agent_beats_random_on_held_out_catch(trained: dict[str, Any]) -> None:
    from worldflux.models.token.evaluate import catch_return

    agent, agent_err = catch_return(trained["model"], HELD_OUT_EPISODES, **GEOMETRY)
    rand, rand_err = catch_return(None, HELD_OUT_EPISODES, **GEOMETRY)
    # clearly above: one point of return and three standard errors of the difference
    print(
        f"token return: agent {agent:.2f} +- {agent_err:.2f}, random {rand:.2f} +- {rand_err:.2f}"
    )
    margin = max(1.0, 3 * (agent_err**2 + rand_err**2) ** 0.5)
    assert agent > rand + margin, {"agent": agent, "random": rand}
