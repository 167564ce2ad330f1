"""``scripts/bench_physics.py`` builds a valid training batch for the presets it times."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_bench_times_the_exact_target_loss_of_the_lnn() -> None:
    # physics:lnn regresses exact derivatives: its synthetic batch must carry state_dot
    path = ROOT / "scripts" / "bench_physics.py"
    spec = importlib.util.spec_from_file_location("bench_physics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.bench("physics:lnn", batch=2, t=2, device="cpu", repeat=1)
    assert result["update_s"] > 0 and result["rollout_step_s"] > 0
