"""Every preset in the tree: compose, validate, build on the meta device, count parameters.

A new preset file is tested automatically. Counts are checked against the official
implementation's (``meta.official_params``, from ../shared/REFERENCES.md) exactly in every
reference setting the preset names, and against the preset's own recorded ``meta.num_parameters``
(what ``get_model_info`` reports). Each family's base preset and its config dataclass must agree on
every default.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from worldflux import catalog, create_world_model, get_config, list_models
from worldflux.config import config_class, node_to_config
from worldflux.factory import build
from worldflux.models import FAMILIES

PRESETS = list_models(surface="all")
ROOT = Path(__file__).resolve().parents[1]


def _count(model_id: str, **overrides) -> int:
    return build(get_config(model_id, **overrides), device="meta").num_parameters()


@pytest.mark.parametrize("model_id", PRESETS)
def test_preset_composes_validates_and_builds(model_id: str) -> None:
    config = get_config(model_id)
    assert config.family in FAMILIES
    meta = catalog.presets()[model_id].meta
    for key in ("description", "params", "type", "default_obs", "maturity", "surface", "source"):
        assert meta.get(key), f"{model_id}: meta.{key} missing"
    assert meta["maturity"] in catalog.MATURITIES and meta["surface"] in catalog.SURFACES
    model = create_world_model(model_id, device="meta")
    assert model.num_parameters() > 0
    assert {t.device.type for t in model.state_dict().values()} == {"meta"}


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
        assert ours == expected, f"{setting}: ours {ours:,} vs official {expected:,}"


@pytest.mark.parametrize("alias", sorted(catalog.aliases()))
def test_alias_composes_like_its_target(alias: str) -> None:
    assert get_config(alias) == get_config(catalog.aliases()[alias])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_dataclass_defaults_agree_with_the_family_base_preset(family: str) -> None:
    """One source of defaults: the base YAML and the dataclass say the same for every field."""
    cls = config_class(family)
    from_yaml = node_to_config(_read_base(family))
    from_class = cls()
    differ = [
        f"{f.name}: yaml {getattr(from_yaml, f.name)!r} vs dataclass {getattr(from_class, f.name)!r}"
        for f in dataclasses.fields(cls)
        if getattr(from_yaml, f.name) != getattr(from_class, f.name)
    ]
    assert not differ, "defaults written twice disagree:\n" + "\n".join(differ)


def _read_base(family: str) -> dict:
    """``conf/model/<family>/base.yaml`` with its defaults list applied (one file per slot).

    Read as plain YAML: composed directly, a base's relative defaults resolve against the wrong
    group (it is written to be included with ``@_here_``).
    """
    root = catalog.conf_dir() / "model" / family
    data = yaml.safe_load((root / "base.yaml").read_text())
    for entry in data.pop("defaults", []):
        if entry == "_self_":
            continue
        assert isinstance(entry, dict) and len(entry) == 1, f"unexpected defaults entry {entry!r}"
        ((group, choice),) = entry.items()
        if group.startswith("/"):  # an absolute (shared) group: /model/<slot>@<slot>
            folder, _, slot = group.partition("@")
            path = catalog.conf_dir() / folder.strip("/") / f"{choice}.yaml"
        else:
            slot, path = group, root / group / f"{choice}.yaml"
        data.setdefault(slot, yaml.safe_load(path.read_text()))
    return data


def _largest_preset() -> str:
    def size(model_id: str) -> int:
        meta = catalog.presets()[model_id].meta
        return max([meta.get("num_parameters") or 0, *(meta.get("official_params") or {}).values()])

    return max(PRESETS, key=size)


_MEASURE = """
import json, resource, sys, time
import torch, lightning  # imports first, so only the build is measured
from worldflux import create_world_model
if sys.argv[2] == "cuda":
    torch.zeros(1, device="cuda")  # the CUDA context's own host memory is not the model's
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
model = create_world_model(sys.argv[1], device=sys.argv[2])
print(json.dumps({
    "seconds": time.perf_counter() - start,
    "rss_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024,
    "params": model.num_parameters(),
    "devices": sorted({t.device.type for t in model.state_dict().values()}),
}))
"""


def _measure_build(preset: str, device: str) -> dict:
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, preset, device],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_meta_build_of_the_largest_preset_allocates_nothing() -> None:
    """Built under the meta device: no CPU copy, so the largest preset costs megabytes."""
    preset = _largest_preset()
    out = _measure_build(preset, "meta")
    assert out["devices"] == ["meta"] and out["params"] > 100_000_000
    assert out["rss_mb"] < 300, f"{preset} on meta grew the process by {out['rss_mb']:.0f} MB"
    assert out["seconds"] < 60, f"{preset} on meta took {out['seconds']:.1f} s"


@pytest.mark.gpu
def test_cuda_build_of_the_largest_preset_makes_no_host_copy() -> None:
    """Built under the cuda device: the parameters never exist in host memory."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    preset = _largest_preset()
    out = _measure_build(preset, "cuda")
    assert out["devices"] == ["cuda"]
    assert out["rss_mb"] < 300, f"{preset} on cuda grew host memory by {out['rss_mb']:.0f} MB"
