"""Parameter counts of every DreamerV3 size against the official implementation (meta device)."""

from __future__ import annotations

import pytest
import torch

from worldflux import catalog, get_config
from worldflux.models.dreamerv3.config import DreamerV3Config
from worldflux.models.dreamerv3.module import DreamerV3

SIZES = ["size1m", "size12m", "size25m", "size50m", "size100m", "size200m", "size400m"]

# (trainable + slow critic) from ../shared/REFERENCES.md, measured on the official code @ e3f0224
WITH_SLOW = {
    ("size1m", "image_discrete"): 752_567,
    ("size1m", "vector_continuous"): 706_978,
    ("size12m", "image_discrete"): 11_346_119,
    ("size12m", "vector_continuous"): 10_591_522,
    ("size25m", "image_discrete"): 25_356_967,
    ("size25m", "vector_continuous"): 23_652_898,
    ("size50m", "image_discrete"): 44_926_599,
    ("size50m", "vector_continuous"): 41_891_618,
    ("size100m", "image_discrete"): 100_742_215,
    ("size100m", "vector_continuous"): 93_901_090,
    ("size200m", "image_discrete"): 178_792_967,
    ("size200m", "vector_continuous"): 166_619_938,
    ("size400m", "image_discrete"): 401_599_879,
    ("size400m", "vector_continuous"): 374_185_762,
}


def _meta_model(model_id: str, setting: str) -> DreamerV3:
    config = get_config(model_id, **DreamerV3Config.REFERENCE_SETTINGS[setting])
    with torch.device("meta"):
        return DreamerV3(config)


@pytest.mark.parametrize("setting", sorted(DreamerV3Config.REFERENCE_SETTINGS))
@pytest.mark.parametrize("size", SIZES + ["official_xl"])
def test_counts_match_official(size: str, setting: str) -> None:
    model_id = f"dreamerv3:{size}"
    model = _meta_model(model_id, setting)
    official = catalog.presets()[model_id].meta["official_params"][setting]
    assert model.num_parameters() == official
    key = (size if size != "official_xl" else "size200m", setting)
    assert model.num_parameters(trainable_only=False) == WITH_SLOW[key]


def test_size12m_breakdown() -> None:
    model = _meta_model("dreamerv3:size12m", "image_discrete")
    parts = {
        slot: sum(p.numel() for p in getattr(model, slot).parameters())
        for slot in DreamerV3.component_slots
    }
    assert parts == {
        "encoder": 220_416,
        "dynamics": 5_979_648,
        "decoder": 1_272_003,
        "reward_head": 721_407,
        "continue_head": 656_129,
        "policy": 789_510,
        "value": 853_503,
    }


def test_slow_value_is_not_trainable() -> None:
    model = _meta_model("dreamerv3:size1m", "image_discrete")
    assert all(not p.requires_grad for p in model.slow_value.parameters())
    assert all(p.requires_grad for p in model.value.parameters())
    (opt,) = model.configure_optimizers()  # one phase, one optimiser
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not in_opt & {id(p) for p in model.slow_value.parameters()}
    assert len(in_opt) == sum(1 for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("size", SIZES)
def test_size_presets_set_only_widths(size: str) -> None:
    config = get_config(f"dreamerv3:{size}")
    base = get_config("dreamerv3:official_xl")
    changed = {k for k, v in config.to_dict().items() if v != base.to_dict()[k]}
    assert changed <= {"deter_dim", "hidden_dim", "classes", "depth", "units"}
