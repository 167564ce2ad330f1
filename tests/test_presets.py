"""Every preset in the tree: compose, validate, build on the meta device, count parameters.

A new preset file is tested automatically. Counts are checked against the official
implementation's (``meta.official_params``, from ../shared/REFERENCES.md) within 2% in every
reference setting the preset names, and against the preset's own recorded ``meta.num_parameters``
(what ``get_model_info`` reports).
"""

from __future__ import annotations

import pytest
import torch

from worldflux import catalog, get_config, list_models
from worldflux.config import config_class
from worldflux.factory import build

PRESETS = list_models(surface="all")


def _count(model_id: str, **overrides) -> int:
    with torch.device("meta"):
        return build(get_config(model_id, **overrides), device="meta").num_parameters()


@pytest.mark.parametrize("model_id", PRESETS)
def test_preset_composes_validates_and_builds(model_id: str) -> None:
    config = get_config(model_id)
    assert config.family in model_id or model_id.startswith("dreamer:")
    meta = catalog.presets()[model_id].meta
    for key in ("description", "params", "type", "default_obs", "maturity", "surface", "source"):
        assert meta.get(key), f"{model_id}: meta.{key} missing"
    assert meta["maturity"] in catalog.MATURITIES and meta["surface"] in catalog.SURFACES
    with torch.device("meta"):
        model = build(config, device="meta")
    assert model.num_parameters() > 0


@pytest.mark.parametrize("model_id", PRESETS)
def test_parameter_count(model_id: str) -> None:
    meta = catalog.presets()[model_id].meta
    # get_model_info reports the stored count without building: it must equal a real build
    # (python scripts/catalog.py --write-params updates it).
    assert _count(model_id) == meta.get("num_parameters"), "recorded count differs"
    official = meta.get("official_params") or {}
    settings = config_class(get_config(model_id).family).REFERENCE_SETTINGS
    for setting, expected in official.items():
        ours = _count(model_id, **settings[setting])
        assert abs(ours - expected) <= 0.02 * expected, (
            f"{setting}: ours {ours:,} vs official {expected:,}"
        )
