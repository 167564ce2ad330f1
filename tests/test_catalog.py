"""The catalog comes from the conf/model tree: presets, aliases, filters and errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from worldflux import catalog, get_model_info, list_models

#: The alias table of the factory reference (families that exist); new aliases may be added.
ALIASES = {
    "dreamer": "dreamerv3:size12m",
    "dreamer-ci": "dreamer:ci",
    "dreamerv3": "dreamerv3:size12m",
    "dreamer-small": "dreamerv3:size12m",
    "dreamer-medium": "dreamerv3:size50m",
    "dreamer-large": "dreamerv3:size200m",
    "dreamerv3:official": "dreamerv3:official_xl",
    "tdmpc": "tdmpc2:5m",
    "tdmpc2-ci": "tdmpc2:ci",
    "tdmpc2": "tdmpc2:5m",
    "tdmpc-small": "tdmpc2:5m",
    "tdmpc-proof": "tdmpc2:proof_5m",
    "tdmpc2:proof": "tdmpc2:proof_5m",
    "tdmpc-legacy": "tdmpc2:5m_legacy",
    "tdmpc-medium": "tdmpc2:48m",
    "tdmpc-large": "tdmpc2:317m",
}

#: Presets the reference names; new presets are found on disk, not listed here.
PRESETS = [
    "dreamer:ci",
    "dreamerv3:size1m",
    "dreamerv3:size12m",
    "dreamerv3:size25m",
    "dreamerv3:size50m",
    "dreamerv3:size100m",
    "dreamerv3:size200m",
    "dreamerv3:size400m",
    "dreamerv3:official_xl",
    "tdmpc2:ci",
    "tdmpc2:1m",
    "tdmpc2:5m",
    "tdmpc2:19m",
    "tdmpc2:48m",
    "tdmpc2:317m",
    "tdmpc2:proof_5m",
    "tdmpc2:5m_legacy",
    "phasedemo:ci",
]


def test_aliases_include_the_reference_table() -> None:
    aliases = catalog.aliases()
    assert {k: aliases.get(k) for k in ALIASES} == ALIASES


def test_every_preset_file_listed_with_surface_all() -> None:
    import yaml

    root = catalog.conf_dir() / "model"
    on_disk = {
        catalog.path_to_id(p.relative_to(root).with_suffix("").as_posix())
        for p in root.glob("*/*.yaml")
        if isinstance((yaml.safe_load(p.read_text()) or {}).get("meta"), dict)
    }
    assert sorted(list_models(surface="all")) == sorted(on_disk)
    assert set(PRESETS) <= on_disk


def test_default_surface_hides_advanced_presets() -> None:
    supported = list_models()
    assert "dreamerv3:size12m" in supported and "tdmpc2:5m" in supported
    assert "dreamerv3:official_xl" not in supported and "tdmpc2:proof_5m" not in supported
    public = list_models(surface="public")
    assert "dreamerv3:official_xl" in public and "tdmpc2:proof_5m" in public


def test_verbose_info_has_reference_keys() -> None:
    models = list_models(verbose=True)
    assert isinstance(models, dict)
    info = models["dreamerv3:size12m"]
    for key in ("description", "params", "type", "default_obs", "maturity", "model_id"):
        assert info[key] is not None, key
    assert info["type"] == "dreamer" and info["default_obs"] == "image"


def test_maturity_filter() -> None:
    refs = list_models(maturity="reference", surface="all")
    assert "dreamerv3:size12m" in refs and "tdmpc2:5m" in refs
    assert "dreamer:ci" not in refs
    assert all(list_models(verbose=True, surface="all")[m]["maturity"] == "reference" for m in refs)


@pytest.mark.parametrize("kwargs", [{"maturity": "beta"}, {"surface": "everything"}])
def test_bad_filters_list_valid_values(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        list_models(**kwargs)


def test_model_info_through_alias() -> None:
    info = get_model_info("dreamer")
    assert info["alias"] == "dreamer" and info["model_id"] == "dreamerv3:size12m"
    assert isinstance(info["num_parameters"], int) and info["num_parameters"] > 1_000_000
    assert "alias" not in get_model_info("dreamerv3:size12m")


def test_unknown_model_suggests_close_matches() -> None:
    with pytest.raises(ValueError, match="dreamerv3:size12m"):
        get_model_info("dreamerv3:size12")
    with pytest.raises(ValueError, match="type:size"):
        get_model_info("nonsense")


def test_listing_imports_neither_torch_nor_lightning() -> None:
    code = (
        "import sys, worldflux; worldflux.list_models(verbose=True);"
        "worldflux.get_config('dreamerv3:size12m'); worldflux.get_config('tdmpc2:5m');"
        "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_model_info_imports_neither_torch_nor_lightning() -> None:
    code = (
        "import sys, worldflux; info = worldflux.get_model_info('dreamer');"
        "print(info['num_parameters'], sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().split(maxsplit=1) == ["10492616", "[]"]


def test_verbose_listing_carries_the_stored_counts() -> None:
    models = list_models(verbose=True, surface="all")
    assert isinstance(models, dict)
    for model_id, info in models.items():
        assert isinstance(info["num_parameters"], int) and info["num_parameters"] > 0, model_id


def test_catalog_script_updates_a_stored_count() -> None:
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "catalog.py"
    spec = importlib.util.spec_from_file_location("catalog_script", script)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    text = "defaults: []\nmeta:\n  type: x\n  num_parameters: 5  # note\n\nunits: 3\n"
    assert module.with_num_parameters(text, 7) == text.replace("5  # note", "7  # note")
    fresh = module.with_num_parameters("meta:\n  type: x\n\nunits: 3\n", 9)
    assert fresh == "meta:\n  type: x\n  num_parameters: 9\n\nunits: 3\n"
