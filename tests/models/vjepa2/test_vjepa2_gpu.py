"""V-JEPA 2-AC as released on a GPU (``pytest -m gpu``): ``vjepa2:base`` in bf16 fits one 80 GB
GPU and plans one CEM step with the reference's budget (400 samples, top 10, 10 iterations,
horizon 2) on the flash / memory-efficient SDPA kernels (the math fallback is disabled)."""

from __future__ import annotations

import time

import pytest
import torch

from worldflux import create_world_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_base_plans_one_cem_step_in_bf16_within_80_gb() -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.cuda.reset_peak_memory_stats()
    model = create_world_model("vjepa2:base", device="cuda").to(torch.bfloat16).eval()
    obs = torch.randint(0, 256, (1, 3, 256, 256), dtype=torch.uint8, device="cuda")
    goal = torch.randint(0, 256, (1, 3, 256, 256), dtype=torch.uint8, device="cuda")
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
        start = time.perf_counter()
        action, _ = model.act(obs, goal=goal, eval_mode=True)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    peak_gb = torch.cuda.max_memory_allocated() / 2**30
    print(f"vjepa2:base CEM step: {seconds:.2f} s, peak {peak_gb:.1f} GiB")
    assert action.shape == (1, 7) and torch.isfinite(action.float()).all()
    assert action.abs().max() <= 0.05 + 1e-3
    assert peak_gb < 80
