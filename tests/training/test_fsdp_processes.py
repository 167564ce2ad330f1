"""``trainer=fsdp`` with two CPU processes over gloo (real subprocesses, ``slow``): a run trains,
checkpoints, resumes from a mid-run checkpoint, and its export loads in one process with the
weights and outputs of the checkpoint; with both checkpoint formats."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
RUN = [
    "model=tdmpc2/ci",
    "env=catch_vector",
    "data.prefill=32",
    "data.env_steps=40",
    "data.batch_size=4",
    "data.batch_length=8",
    "data.train_ratio=32",
    "device=cpu",
    "threads=1",
    "logger=csv",
    "eval.final=false",
    "callbacks.video=null",
    "callbacks.checkpoint.every_n_updates=4",
    "callbacks.checkpoint.keep_last=2",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer=fsdp",
    "trainer.devices=2",
]


def _train(args: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "worldflux.train", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    text = done.stdout + done.stderr
    assert done.returncode == 0, text[-4000:]
    return text


@pytest.mark.slow
@pytest.mark.parametrize("state_dict", ["full", "sharded"])
def test_fsdp_two_cpu_processes_train_resume_and_export(state_dict: str, tmp_path: Path) -> None:
    from worldflux.factory import create_world_model
    from worldflux.models.tdmpc2.module import TDMPC2
    from worldflux.training.checkpoint import consolidate

    run = tmp_path / "run"
    args = [*RUN, f"trainer.fsdp.state_dict={state_dict}", f"hydra.run.dir={run}"]
    first = _train(args)
    assert "trained 8 updates (8 in this session)" in first, first[-2000:]
    ckpts = run / "checkpoints"
    replay = ckpts / "replay"
    assert list(replay.glob("rank0-*.npz")) and list(replay.glob("rank1-*.npz"))
    middle = ckpts / "update-000000004.ckpt"
    assert middle.is_dir() == (state_dict == "sharded")

    second = _train([*args, f"resume={middle}"])
    assert f"resuming from {middle}" in second
    assert re.search(r"trained 8 updates \(4 in this session\)", second), second[-2000:]

    last = ckpts / "last.ckpt"
    if state_dict == "sharded":
        last = consolidate(last, tmp_path / "consolidated.ckpt")
    checkpoint = torch.load(last, weights_only=True)
    loaded = TDMPC2.load_from_checkpoint(last)
    exported = create_world_model(str(run / "export"))
    ours = exported.state_dict()
    assert ours.keys() == loaded.state_dict().keys()
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(ours[key], value, rtol=0, atol=0, msg=key)
    obs = torch.rand(5, *exported.config.obs_shape)
    with torch.no_grad():
        torch.testing.assert_close(exported.encode(obs), loaded.encode(obs), rtol=0, atol=0)

    if state_dict == "full":  # each rank's optimiser state holds its own shard of the model phase
        ranks = checkpoint["optimizer_states"][0]["worldflux_rank_states"]
        sizes = [sum(s["exp_avg"].numel() for s in r["state"].values()) for r in ranks]
        phase = loaded.schedule.phases[0]
        total = sum(p.numel() for p in loaded.phase_parameters(phase))
        assert len(ranks) == 2 and sum(sizes) == total and 0 < min(sizes) < total
