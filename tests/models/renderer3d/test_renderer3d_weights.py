"""torch-gqn state dicts load into renderer3d:gqn (key mapping, sizes, clear errors)."""

from __future__ import annotations

import pytest
import torch

from worldflux import create_world_model
from worldflux.errors import ModelFileError
from worldflux.models.renderer3d.weights import reference_overrides, reference_to_ours

TINY = {"obs_shape": (3, 16, 16), "latent_dim": 8, "core_channels": 4, "gqn_steps": 2}


def _reference_layout(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A state dict in torch-gqn's key layout (``phi.*`` and the GQN's own attribute names)."""
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith("encoder."):
            out["phi." + key[len("encoder.") :]] = value.clone()
        elif key.startswith("renderer."):
            out[key[len("renderer.") :]] = value.clone()
    return out


def test_reference_layout_loads_with_its_sizes(tmp_path) -> None:
    source = create_world_model("renderer3d:gqn", action_conditioned=False, **TINY)
    state = _reference_layout(source)
    assert {k.split(".")[0] for k in state} == {
        "phi",
        "inference_core",
        "generation_core",
        "eta_pi",
        "eta_g",
        "eta_e",
    }
    path = tmp_path / "model-final.pt"
    torch.save(state, path)
    over = reference_overrides(state)
    assert over == {
        "latent_dim": 8,
        "core_channels": 4,
        "z_channels": 3,
        "shared_core": True,
        "action_conditioned": False,
    }
    loaded = create_world_model("renderer3d:gqn", weights=str(path), obs_shape=(3, 16, 16))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_unshared_cores_give_the_step_count() -> None:
    model = create_world_model("renderer3d:gqn", shared_core=False, device="meta", **TINY)
    over = reference_overrides(_reference_layout(model))
    assert over["shared_core"] is False and over["gqn_steps"] == 2


def test_foreign_keys_are_named() -> None:
    with pytest.raises(ModelFileError, match=r"unexpected keys \['module.phi.conv1.weight'\]"):
        reference_to_ours({"module.phi.conv1.weight": torch.zeros(1)})
    with pytest.raises(ModelFileError, match="missing 'eta_g.weight'"):
        reference_overrides({"phi.conv8.weight": torch.zeros(8, 8, 1, 1)})
