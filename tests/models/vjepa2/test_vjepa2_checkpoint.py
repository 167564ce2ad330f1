"""Loading checkpoints in the official V-JEPA 2 layout (facebookresearch/vjepa2 @ c2963a4):
``encoder`` / ``target_encoder`` / ``predictor`` state dicts with ``module.backbone.`` prefixes
and an unused ``pos_embed``. The key names and shapes below are written out from the reference's
modules (``vision_transformer.py``, ``ac_predictor.py``), not taken from our networks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from worldflux import create_world_model
from worldflux.errors import ModelFileError

E, D, DEPTH, A, C, PATCH = 24, 24, 2, 2, 3, 4  # vjepa2:ci sizes (encoder and predictor)


def _block(prefix: str, dim: int, hidden: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    shapes = {
        "norm1.weight": (dim,),
        "norm1.bias": (dim,),
        "attn.qkv.weight": (3 * dim, dim),
        "attn.qkv.bias": (3 * dim,),
        "attn.proj.weight": (dim, dim),
        "attn.proj.bias": (dim,),
        "norm2.weight": (dim,),
        "norm2.bias": (dim,),
        "mlp.fc1.weight": (hidden, dim),
        "mlp.fc1.bias": (hidden,),
        "mlp.fc2.weight": (dim, hidden),
        "mlp.fc2.bias": (dim,),
    }
    return {f"{prefix}{k}": torch.randn(s, generator=g) for k, s in shapes.items()}


def official_checkpoint(seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """A V-JEPA 2-AC checkpoint of the ci sizes in the official key layout."""
    g = torch.Generator().manual_seed(seed)
    pre = "module.backbone."
    enc = {
        f"{pre}patch_embed.proj.weight": torch.randn(E, C, 2, PATCH, PATCH, generator=g),
        f"{pre}patch_embed.proj.bias": torch.randn(E, generator=g),
        f"{pre}norm.weight": torch.randn(E, generator=g),
        f"{pre}norm.bias": torch.randn(E, generator=g),
        f"{pre}pos_embed": torch.zeros(1, 16, E),  # present in some files, unused with RoPE
    }
    for i in range(DEPTH):
        enc.update(_block(f"{pre}blocks.{i}.", E, 48, g))
    pred = {
        f"{pre}predictor_embed.weight": torch.randn(D, E, generator=g),
        f"{pre}predictor_embed.bias": torch.randn(D, generator=g),
        f"{pre}action_encoder.weight": torch.randn(D, A, generator=g),
        f"{pre}action_encoder.bias": torch.randn(D, generator=g),
        f"{pre}state_encoder.weight": torch.randn(D, A, generator=g),
        f"{pre}state_encoder.bias": torch.randn(D, generator=g),
        f"{pre}extrinsics_encoder.weight": torch.randn(D, A - 1, generator=g),
        f"{pre}extrinsics_encoder.bias": torch.randn(D, generator=g),
        f"{pre}predictor_norm.weight": torch.randn(D, generator=g),
        f"{pre}predictor_norm.bias": torch.randn(D, generator=g),
        f"{pre}predictor_proj.weight": torch.randn(E, D, generator=g),
        f"{pre}predictor_proj.bias": torch.randn(E, generator=g),
    }
    for i in range(DEPTH):
        pred.update(_block(f"{pre}predictor_blocks.{i}.", D, 48, g))
    target = {k: v + 1.0 for k, v in enc.items()}
    return {"encoder": enc, "target_encoder": target, "predictor": pred, "epoch": 1}


def test_official_layout_loads_target_encoder_and_predictor(tmp_path: Path) -> None:
    ckpt = official_checkpoint()
    torch.save(ckpt, tmp_path / "vjepa2-ac.pt")
    model = create_world_model("vjepa2:ci", weights=str(tmp_path / "vjepa2-ac.pt"))
    enc, pred = model.encoder.state_dict(), model.predictor.state_dict()
    pre = "module.backbone."
    torch.testing.assert_close(
        enc["blocks.1.mlp.fc2.weight"], ckpt["target_encoder"][f"{pre}blocks.1.mlp.fc2.weight"]
    )
    torch.testing.assert_close(
        enc["patch_embed.proj.weight"], ckpt["target_encoder"][f"{pre}patch_embed.proj.weight"]
    )
    for key, value in pred.items():
        torch.testing.assert_close(value, ckpt["predictor"][pre + key])


def test_missing_and_mismatched_keys_are_named(tmp_path: Path) -> None:
    ckpt = official_checkpoint()
    del ckpt["predictor"]["module.backbone.action_encoder.bias"]
    ckpt["predictor"]["module.backbone.state_encoder.weight"] = torch.zeros(D, 7)
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(
        ModelFileError,
        match=r"missing predictor keys: action_encoder\.bias.*"
        r"mismatched predictor keys: state_encoder\.weight \(24, 7\) \(expected \(24, 2\)\)",
    ):
        create_world_model("vjepa2:ci", weights=str(tmp_path / "bad.pt"))
    torch.save({"encoder": ckpt["encoder"]}, tmp_path / "enc.pt")
    with pytest.raises(ModelFileError, match="no 'predictor' state dict"):
        create_world_model("vjepa2:ci", weights=str(tmp_path / "enc.pt"))
    with pytest.raises(ModelFileError, match="no such checkpoint file"):
        create_world_model("vjepa2:ci", weights=str(tmp_path / "absent.pt"))


def test_a_pretraining_checkpoint_hands_its_encoder_to_the_ac_stage(tmp_path: Path) -> None:
    from worldflux.models.vjepa2.checkpoint import official_state_dicts

    pre = create_world_model("vjepa2:pretrain_ci")
    with torch.no_grad():
        for p in pre.target_encoder.parameters():
            p.add_(0.5)
    torch.save(official_state_dicts(pre), tmp_path / "pre.pt")
    ac = create_world_model("vjepa2:ci", encoder_weights=str(tmp_path / "pre.pt"))
    for a, b in zip(
        ac.encoder.state_dict().values(), pre.target_encoder.target.state_dict().values()
    ):
        torch.testing.assert_close(a, b)
