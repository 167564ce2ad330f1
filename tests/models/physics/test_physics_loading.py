"""Reference-layout (hamiltonian-nn) state dicts load into physics models; bad files are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from worldflux import create_world_model
from worldflux.errors import ModelFileError
from worldflux.models.physics.loading import load_reference_state_dict


def _reference_layout(model: torch.nn.Module, pixel: bool = False) -> dict[str, torch.Tensor]:
    """Our weights renamed to hamiltonian-nn's keys (HNN or PixelHNN), perturbed to be distinct."""
    torch.manual_seed(3)
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith("field_net."):
            prefix = "hnn.differentiable_model." if pixel else "differentiable_model."
            key = prefix + key[len("field_net.") :]
        out[key] = value + torch.randn_like(value)
    return out


def test_hnn_state_dict_file_loads(tmp_path: Path) -> None:
    model = create_world_model("physics:base", hidden_dim=8)
    state = _reference_layout(model)
    assert sorted(state) == [f"differentiable_model.linear{i}.{p}" for i, p in
                             ((1, "bias"), (1, "weight"), (2, "bias"), (2, "weight"), (3, "weight"))]  # fmt: skip
    torch.save(state, tmp_path / "spring-hnn.tar")  # how the reference's train.py saves
    load_reference_state_dict(model, tmp_path / "spring-hnn.tar")
    assert torch.equal(model.field_net.linear3.weight, state["differentiable_model.linear3.weight"])


def test_pixel_hnn_state_dict_loads() -> None:
    model = create_world_model(
        "physics:pixel_hnn", hidden_dim=4, ae_hidden_dim=4, obs_shape=[2, 4, 4]
    )
    state = _reference_layout(model, pixel=True)
    assert (
        "autoencoder.linear8.weight" in state and "hnn.differentiable_model.linear1.weight" in state
    )
    load_reference_state_dict(model, state)
    assert torch.equal(model.autoencoder.linear8.weight, state["autoencoder.linear8.weight"])


def test_mismatches_are_named(tmp_path: Path) -> None:
    model = create_world_model("physics:base", hidden_dim=8)
    state = _reference_layout(model)
    del state["differentiable_model.linear2.bias"]
    state["differentiable_model.linear1.weight"] = torch.zeros(3, 2)
    with pytest.raises(ModelFileError, match=r"missing keys \['field_net.linear2.bias'\].*"
                       r"field_net.linear1.weight: file \(3, 2\) vs model \(8, 2\)"):  # fmt: skip
        load_reference_state_dict(model, state)
    (tmp_path / "bad.tar").write_text("not a checkpoint")
    with pytest.raises(ModelFileError, match="bad.tar"):
        load_reference_state_dict(model, tmp_path / "bad.tar")
