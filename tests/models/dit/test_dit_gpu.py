"""CDiT-B/2 (``dit:base``) on a GPU (``pytest -m gpu``): next-frame sampling in bf16 autocast with
the attention restricted to the flash / memory-efficient SDPA kernels (the math fallback is
disabled, so a layout that falls back to it fails here), and its frames per second at 10 DDIM
steps printed. The full table (250, 50, 10 steps) is ``python scripts/bench_dit.py --preset
dit:base --device cuda`` (docs/dit.md)."""

from __future__ import annotations

import time

import pytest
import torch

from worldflux import create_world_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_base_samples_next_latents_on_fused_sdpa_in_bf16() -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model = create_world_model("dit:base", device="cuda").eval()
    c = model.config
    ch, size, _ = c.latent_shape()
    b = 8
    window = torch.randn(b, c.context_size, ch, size, size, device="cuda")
    action = torch.randn(b, c.action_dim, device="cuda")
    with (
        torch.no_grad(),
        torch.autocast("cuda", dtype=torch.bfloat16),
        sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]),
    ):
        model.predict_next(window, action, num_steps=10, sampler="ddim")  # warm-up
        torch.cuda.synchronize()
        start = time.perf_counter()
        out = model.predict_next(window, action, num_steps=10, sampler="ddim")
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    print(f"dit:base, batch {b}, 10 DDIM steps, bf16: {b / seconds:.1f} frames/s")
    assert out.shape == (b, ch, size, size)
    assert torch.isfinite(out.float()).all()
