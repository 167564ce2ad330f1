"""``trainer=ddp`` across nodes, as torchrun launches it: two "nodes" of one CPU process each
(``--nnodes 2 --node-rank i``) on this machine over gloo (real subprocesses, ``slow``). The run
trains, checkpoints (each node's rank writes its replay), resumes from a mid-run checkpoint, and
its export loads in one process with the checkpoint's weights and outputs."""

from __future__ import annotations

import os
import re
import socket
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
    "trainer=ddp",
    "trainer.devices=1",
    "trainer.num_nodes=2",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun_two_nodes(args: list[str]) -> str:
    """Start node 0 and node 1 (torchrun, one process each) and wait for both."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    port = _free_port()
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                "--nproc-per-node=1",
                f"--node-rank={node}",
                "--master-addr=127.0.0.1",
                f"--master-port={port}",
                "-m",
                "worldflux.train",
                *args,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for node in (0, 1)
    ]
    logs = [p.communicate(timeout=900)[0] for p in nodes]
    for node, (proc, log) in enumerate(zip(nodes, logs)):
        assert proc.returncode == 0, f"node {node}:\n{log[-4000:]}"
    return logs[0]


@pytest.mark.slow
def test_ddp_two_nodes_train_resume_and_export(tmp_path: Path) -> None:
    from worldflux.factory import create_world_model
    from worldflux.models.tdmpc2.module import TDMPC2

    run = tmp_path / "run"
    args = [*RUN, f"hydra.run.dir={run}"]
    first = _torchrun_two_nodes(args)
    assert "trained 8 updates (8 in this session)" in first, first[-2000:]
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in first
    replay = run / "checkpoints" / "replay"
    assert list(replay.glob("rank0-*.npz")) and list(replay.glob("rank1-*.npz"))

    middle = run / "checkpoints" / "update-000000004.ckpt"
    second = _torchrun_two_nodes([*args, f"resume={middle}"])
    assert f"resuming from {middle}" in second
    assert re.search(r"trained 8 updates \(4 in this session\)", second), second[-2000:]

    loaded = TDMPC2.load_from_checkpoint(run / "checkpoints" / "last.ckpt")
    exported = create_world_model(str(run / "export"))
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(exported.state_dict()[key], value, rtol=0, atol=0, msg=key)
    obs = torch.rand(5, *exported.config.obs_shape)
    with torch.no_grad():
        torch.testing.assert_close(exported.encode(obs), loaded.encode(obs), rtol=0, atol=0)
