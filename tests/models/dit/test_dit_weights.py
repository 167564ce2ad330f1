"""Released weights: NWM checkpoints (``{"model", "ema", "args", ...}`` as its train.py writes
them, reference key layout, ``_orig_mod.`` prefixes) and the SD VAE in diffusers' layout."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.models.dit.helpers import tiny
from tests.models.dit.test_dit_architecture import reference_layout
from worldflux.errors import ModelFileError

ROOT = Path(__file__).resolve().parents[3]
SMALL = {
    "patch_size": 2,
    "hidden_size": 24,
    "depth": 2,
    "num_heads": 2,
    "obs_shape": [4, 8, 8],
    "action_dim": 3,
}


def _reference_checkpoint(path: Path, compiled: bool) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    layout = reference_layout(24, 2, 4, 16, 4, 2)
    ema = {k: torch.randn(s, generator=g) for k, s in layout.items()}
    model = {k: torch.randn(s, generator=g) for k, s in layout.items()}
    prefix = "_orig_mod." if compiled else ""
    torch.save(
        {
            "model": {prefix + k: v for k, v in model.items()},
            "ema": {prefix + k: v for k, v in ema.items()},
            "args": argparse.Namespace(epochs=300, bfloat16=1),
            "epoch": 3,
            "train_steps": 1000,
        },
        path,
    )
    return ema


@pytest.mark.parametrize("compiled", [False, True])
def test_nwm_checkpoint_loads_its_ema_weights(tmp_path: Path, compiled: bool) -> None:
    ema = _reference_checkpoint(tmp_path / "latest.pth.tar", compiled)
    model = tiny(**SMALL, weights=str(tmp_path / "latest.pth.tar"))
    for key, value in ema.items():
        assert torch.equal(model.denoiser.state_dict()[key], value), key
        assert torch.equal(model.ema.target.state_dict()[key], value), key


def test_nwm_checkpoint_errors_name_the_keys(tmp_path: Path) -> None:
    ema = _reference_checkpoint(tmp_path / "a.pth.tar", False)
    torch.save({"ema": {k: v for k, v in ema.items() if k != "pos_embed"}}, tmp_path / "b.pt")
    with pytest.raises(ModelFileError, match="missing keys \\['pos_embed'\\]"):
        tiny(**SMALL, weights=str(tmp_path / "b.pt"))
    bad = dict(ema, pos_embed=torch.zeros(3, 16, 24))
    torch.save({"ema": bad}, tmp_path / "c.pt")
    with pytest.raises(
        ModelFileError, match=r"pos_embed: file \(3, 16, 24\) vs model \(5, 16, 24\)"
    ):
        tiny(**SMALL, weights=str(tmp_path / "c.pt"))
    with pytest.raises(ModelFileError, match="no such weights file"):
        tiny(**SMALL, weights=str(tmp_path / "missing.pt"))


def test_sd_vae_loads_a_diffusers_layout_state_dict(tmp_path: Path) -> None:
    diffusers = pytest.importorskip("diffusers")
    from safetensors.torch import save_file

    from worldflux.models.dit.weights import load_sd_vae

    small = dict(
        block_out_channels=[8, 8],
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16,
    )
    torch.manual_seed(0)
    ref = diffusers.models.AutoencoderKL(**small)
    state = {k: v.contiguous() for k, v in ref.state_dict().items()}
    save_file(state, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    vae = load_sd_vae(tmp_path, config=small)
    assert all(torch.equal(vae.state_dict()[k], v) for k, v in state.items())
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(
        vae.decode(vae.encode(x).latent_dist.mean).sample,
        ref.decode(ref.encode(x).latent_dist.mean).sample,
    )
    state.pop(next(iter(state)))
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(ModelFileError, match="SD VAE weights do not fit: missing keys"):
        load_sd_vae(tmp_path / "partial.pt", config=small)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("WORLDFLUX_NWM_REF"),
    reason="WORLDFLUX_NWM_REF=<facebookresearch/nwm checkout>",
)
def test_same_outputs_as_the_reference_on_its_saved_checkpoint() -> None:
    """``scripts/compare_dit_official.py``: the reference CDiT, saved as NWM's ``train.py`` saves a
    checkpoint, loads through ``weights=`` and gives the reference's outputs (exit status 0 when
    the worst relative difference is below 1e-4). ``WORLDFLUX_NWM_PYTHON``: a Python that imports
    the checkout (timm), default this one."""
    python = os.environ.get("WORLDFLUX_NWM_PYTHON", sys.executable)
    script = ROOT / "scripts" / "compare_dit_official.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [python, str(script), "--official", os.environ["WORLDFLUX_NWM_REF"]],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "worst relative difference" in run.stdout
