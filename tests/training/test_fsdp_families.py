"""Every family's `ci` preset trains under `trainer=fsdp` in two CPU processes and exports.

The fast FSDP tests check each family's declared wrap units statically; this one runs them: two
gloo processes, a few updates on the family's dummy environment, then the exported model loads in
one process. Slow (two process launches per family).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.test_contract import _dummy_env, _pairs
from worldflux import catalog, get_config
from worldflux.factory import create_world_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("preset", _pairs("loss"))
def test_every_family_trains_under_fsdp_and_exports(preset: str, tmp_path: Path) -> None:
    config = get_config(preset)
    b, t = 2, int(getattr(config, "batch_length", 8))
    prefill, updates = max(16, 4 * t), 3
    steps = prefill + 32
    command = [
        sys.executable,
        "-m",
        "worldflux.train",
        f"model={catalog.id_to_path(preset)}",
        f"env={_dummy_env(config)}",
        f"data.batch_size={b}",
        f"data.batch_length={t}",
        f"data.train_ratio={updates * b * t / (steps - prefill)}",
        f"data.prefill={prefill}",
        f"data.env_steps={steps}",
        "logger=csv",
        "device=cpu",
        "threads=1",
        "eval.final=false",
        "callbacks.video=null",
        "trainer=fsdp",
        "trainer.devices=2",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        f"hydra.run.dir={tmp_path}",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] >= 1
    exported = tmp_path / "export"
    assert exported.is_dir(), sorted(p.name for p in tmp_path.iterdir())
    model = create_world_model(str(exported))
    assert model.config.family == config.family
