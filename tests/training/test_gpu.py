"""GPU runs of the training entry point (``pytest -m gpu`` on a machine with CUDA)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from worldflux import create_world_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize(
    ("preset", "env", "extra"),
    [
        ("dreamer/ci", "dummy/discrete_image", ["data.batch_size=4", "data.batch_length=8"]),
        ("tdmpc2/ci", "dummy/continuous_vector", ["data.batch_size=16", "data.batch_length=4"]),
    ],
)
def test_train_on_cuda_with_bf16(
    preset: str, env: str, extra: list[str], compose_train: Any, tmp_path: Path
) -> None:
    from worldflux.train import train

    cfg = compose_train(f"model={preset}", f"env={env}", "device=cuda", *extra)
    metrics = train(cfg)
    assert metrics["env/steps"] == 80
    assert all(
        torch.isfinite(torch.tensor(v)) for k, v in metrics.items() if k.startswith("train/loss/")
    )
    assert create_world_model(str(tmp_path / "export"), device="cuda").device.type == "cuda"


def test_dreamerv3_size12m_update_on_cuda() -> None:
    model = create_world_model("dreamerv3:size12m", device="cuda")
    optimizer = model.configure_optimizers()
    b, t = 16, 64
    batch = {
        "obs": torch.randint(0, 255, (b, t, 3, 64, 64), dtype=torch.uint8, device="cuda"),
        "action": torch.nn.functional.one_hot(
            torch.randint(0, 6, (b, t), device="cuda"), 6
        ).float(),
        "reward": torch.randn(b, t, device="cuda"),
        "first": torch.zeros(b, t, dtype=torch.bool, device="cuda"),
        "terminal": torch.zeros(b, t, dtype=torch.bool, device="cuda"),
    }
    batch["first"][:, 0] = True
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model.loss(batch)
    out.total.backward()
    optimizer.step()
    assert torch.isfinite(out.total)
