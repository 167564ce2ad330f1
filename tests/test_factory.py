"""create_world_model: every example of the factory reference, overrides, persistence, errors."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from worldflux import catalog, create_world_model, get_config
from worldflux.backends import OfficialBackendHandle
from worldflux.core.model import WorldModel
from worldflux.errors import BackendError, ComponentError, ConfigError, UnsafeTargetError

#: Every family's tiny ``ci`` preset, found in the catalog (no hand-written family list).
CI_PRESETS = sorted(p for p in catalog.presets() if p.split(":", 1)[1] == "ci")


def _model_class(name: str) -> type:
    from worldflux.core.instantiate import resolve_target

    return resolve_target(get_config(name)._target_)


#: ``ci`` presets of the families with replaceable components (a test family may have none).
COMPONENT_PRESETS = [p for p in CI_PRESETS if _model_class(p).component_slots]


def _meta(model: str, **kw):
    with torch.device("meta"):
        return create_world_model(model, device="meta", **kw)


def test_seed_basic_usage() -> None:
    model = _meta("dreamerv3:size12m")
    assert isinstance(model, WorldModel) and model.config.deter_dim == 2048


def test_seed_custom_observation_space() -> None:
    model = create_world_model("tdmpc2:5m", obs_shape=(39,), action_dim=4)
    assert list(model.config.obs_shape) == [39] and model.config.action_dim == 4


def test_seed_alias() -> None:
    assert _meta("dreamer-large").config == get_config("dreamerv3:size200m")


def test_seed_multimodal() -> None:
    model = _meta(
        "dreamerv3:size12m",
        observation_modalities={"image": {"kind": "image", "shape": (3, 64, 64)}},
    )
    assert model.config.modalities() == {"image": {"kind": "image", "shape": [3, 64, 64]}}


def test_image_plus_vector_modalities_build_one_encoder_each() -> None:
    mods = {
        "image": {"kind": "image", "shape": (3, 16, 16)},
        "proprio": {"kind": "vector", "shape": (5,)},
    }
    model = create_world_model("dreamer:ci", observation_modalities=mods)
    obs = {"image": torch.zeros(2, 3, 16, 16, dtype=torch.uint8), "proprio": torch.zeros(2, 5)}
    action, _ = model.act(obs)
    assert action.shape == (2, model.config.action_dim)


def test_seed_delegated_backend_handle() -> None:
    handle = create_world_model(
        "dreamerv3:official_xl", backend="official_dreamerv3_jax_subprocess", device="cuda"
    )
    assert isinstance(handle, OfficialBackendHandle)
    assert handle.model_id == "dreamerv3:official_xl" and handle.device == "cuda"
    assert handle.config["deter_dim"] == 8192
    handle.root = None
    with pytest.raises(BackendError, match="WORLDFLUX_DREAMERV3_ROOT"):
        handle.launch()
    tdmpc = create_world_model("tdmpc-proof", backend="official_tdmpc2_torch_subprocess")
    assert tdmpc.model_id == "tdmpc2:proof_5m" and "model_size=5" in tdmpc.command()


def test_backend_pairing_and_unknown_backend() -> None:
    with pytest.raises(ValueError, match="pairs with"):
        create_world_model("dreamerv3:size12m", backend="official_dreamerv3_jax_subprocess")
    with pytest.raises(ValueError, match="unknown backend"):
        create_world_model("dreamerv3:official_xl", backend="jax")


def test_seed_load_trained_model(tmp_path: Path) -> None:
    model = create_world_model("tdmpc2:ci")
    target = tmp_path / "checkpoints" / "my_model"
    model.save_pretrained(target, model_id="tdmpc2:ci")
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        loaded = create_world_model("./checkpoints/my_model")
    finally:
        os.chdir(old)
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


@pytest.mark.parametrize("name", CI_PRESETS)
def test_save_load_round_trip_gives_identical_outputs(name: str, tmp_path: Path) -> None:
    """Every family's ci preset, at its own spaces, saves and loads to the same weights and acts
    the same (families without ``act``: same weights and buffers)."""
    model = create_world_model(name)
    model.save_pretrained(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {
        "config.yaml",
        "model.safetensors",
        "metadata.json",
    }
    loaded = create_world_model(str(tmp_path / "m"))
    model.eval(), loaded.eval()
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    mods = model.config.modalities()
    if not model.supports("act") or len(mods) != 1:
        return
    spec = next(iter(mods.values()))
    shape = (3, *spec["shape"])
    obs = (
        torch.randint(0, 256, shape, dtype=torch.uint8)
        if spec["kind"] == "image"
        else (torch.randn(shape))
    )
    torch.manual_seed(1)
    a1, _ = model.act(obs, eval_mode=True)
    torch.manual_seed(1)
    a2, _ = loaded.act(obs, eval_mode=True)
    assert torch.equal(a1, a2)


def test_lightning_checkpoint_loads(tmp_path: Path) -> None:
    import lightning as L

    model = create_world_model("dreamer:ci")
    trainer = L.Trainer(
        max_steps=0, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.strategy.connect(model)
    path = tmp_path / "x.ckpt"
    trainer.save_checkpoint(path)
    again = type(model).load_from_checkpoint(path)
    loaded = create_world_model(str(path))
    for m in (again, loaded):
        assert all(
            torch.equal(a, b) for a, b in zip(model.state_dict().values(), m.state_dict().values())
        )


def test_tampered_config_cannot_call_arbitrary_code(tmp_path: Path) -> None:
    model = create_world_model("tdmpc2:ci")
    model.save_pretrained(tmp_path / "m")
    cfg_path = tmp_path / "m" / "config.yaml"
    data = yaml.safe_load(cfg_path.read_text())
    marker = tmp_path / "pwned"
    data["_target_"] = "os.system"
    cfg_path.write_text(yaml.safe_dump(data))
    with pytest.raises(UnsafeTargetError):
        create_world_model(str(tmp_path / "m"))
    data = yaml.safe_load(cfg_path.read_text())
    data["_target_"] = type(model).__module__ + "." + type(model).__name__
    slot = model.component_slots[0]
    data[slot] = {**data[slot], "_target_": "subprocess.call", "args": f"touch {marker}"}
    cfg_path.write_text(yaml.safe_dump(data))
    with pytest.raises((UnsafeTargetError, ConfigError)):
        create_world_model(str(tmp_path / "m"))
    assert not marker.exists()


def _slots_with_alternatives(name: str) -> list[tuple[str, list[str]]]:
    """The model's own slots (``component_slots``) with more than one component file."""
    from worldflux.config import component_group

    family = get_config(name).family
    out = []
    for slot in _model_class(name).component_slots:
        try:
            folder, _ = component_group(family, slot)
        except ComponentError:
            continue
        options = sorted(p.stem for p in folder.glob("*.yaml"))
        if len(options) > 1:
            out.append((slot, options))
    return out


@pytest.mark.parametrize("name", COMPONENT_PRESETS)
def test_component_override_by_id(name: str) -> None:
    """Swapping a slot's file by id swaps it (never merges), from an id and from a config.

    Some families keep the parts of two model classes in one folder (e.g. JEPA's PLDM and DINO-WM
    encoders); the test uses the first slot whose every file fits this preset's model."""
    from worldflux.config import component_file

    family = get_config(name).family
    tried = []
    for slot, options in _slots_with_alternatives(name):
        try:
            models = {c: create_world_model(name, component_overrides={slot: c}) for c in options}
        except (ComponentError, TypeError) as err:
            tried.append(f"{slot}: {err}")
            continue
        for choice, model in models.items():
            file_node = yaml.safe_load(component_file(family, slot, choice).read_text())
            assert getattr(model.config, slot) == file_node  # a swap, never a merge
            target = file_node["_target_"].rsplit(".", 1)[-1]
            assert type(getattr(model, slot)).__name__ == target
            config = get_config(name)
            swapped = create_world_model(config, component_overrides={slot: choice})
            assert swapped.config == model.config
        return
    pytest.skip(f"{name}: no slot whose files all fit this model ({'; '.join(tried) or 'none'})")


@pytest.mark.parametrize("name", COMPONENT_PRESETS)
def test_component_override_by_class_and_instance(name: str) -> None:
    base = create_world_model(name)
    slot = next(s for s in base.component_slots if isinstance(getattr(base, s), nn.Module))
    cls = type(getattr(base, slot))

    class Tagged(cls):  # a user subclass, built with the slot's arguments
        pass

    model = create_world_model(name, component_overrides={slot: Tagged})
    assert type(getattr(model, slot)) is Tagged
    instance = copy.deepcopy(getattr(base, slot))
    model = create_world_model(name, component_overrides={slot: instance})
    assert getattr(model, slot) is instance


def test_component_override_errors_list_valid_choices() -> None:
    with pytest.raises(ComponentError, match="valid slots"):
        create_world_model("dreamer:ci", component_overrides={"nope": "x"})
    slot = create_world_model("dreamer:ci").component_slots[0]
    with pytest.raises(ComponentError, match="valid ids"):
        create_world_model("dreamer:ci", component_overrides={slot: "nope"})
    with pytest.raises(ComponentError, match="valid slots"):
        create_world_model("dreamer:ci", component_overrides={"nope": nn.Linear(1, 1)})


def test_api_versions() -> None:
    with pytest.warns(DeprecationWarning):
        legacy = create_world_model("tdmpc2:ci", api_version="v0.2")
    assert isinstance(legacy.model, WorldModel) and legacy.config.family == "tdmpc2"
    with pytest.raises(ValueError, match="api_version"):
        create_world_model("tdmpc2:ci", api_version="v2")


def test_action_spec() -> None:
    model = create_world_model("tdmpc2:ci", action_spec={"kind": "continuous", "dim": 3})
    assert model.config.action_kind == "continuous" and model.config.action_dim == 3
    model = create_world_model("dreamer:ci", action_spec={"kind": "discrete", "num_actions": 5})
    assert model.config.action_kind == "discrete" and model.config.action_dim == 5
    with pytest.raises(ValueError, match="unsupported action kind"):
        create_world_model("dreamer:ci", action_spec={"kind": "multi_binary", "dim": 3})


def test_unknown_names_and_paths() -> None:
    with pytest.raises(ValueError, match="dreamer-large"):
        create_world_model("dreamer-lrage")
    with pytest.raises(ValueError, match="no saved model"):
        create_world_model("./does/not/exist")
    with pytest.raises(ConfigError, match="deter_dim"):
        create_world_model("dreamer:ci", deter_dimm=3)


def test_config_object_round_trip() -> None:
    config = get_config("tdmpc2:ci")
    config.num_q_networks = 3
    model = create_world_model(config)
    assert model.config.num_q_networks == 3


def test_device_placement() -> None:
    model = create_world_model("tdmpc2:ci", device="cpu")
    assert next(model.parameters()).device.type == "cpu"


# ---------------------------------------------------------------------------- user components
@pytest.fixture
def allow_test_components(monkeypatch: pytest.MonkeyPatch) -> None:
    """Admit ``tests.security.`` as a user would admit ``mypkg.``."""
    monkeypatch.setenv("WORLDFLUX_ALLOW_TARGETS", "tests.security.")


def _component_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "my_encoder.yaml"
    path.write_text(text)
    return path


def test_component_file_with_another_signature_tdmpc2(
    tmp_path: Path, allow_test_components: None
) -> None:
    from tests.security.components import LinearEncoder

    path = _component_file(
        tmp_path, "_target_: tests.security.components.LinearEncoder\nwidth: 5\n"
    )
    model = create_world_model("tdmpc2:ci", component_overrides={"encoder": str(path)})
    assert isinstance(model.encoder, LinearEncoder) and model.encoder.width == 5
    assert model.config.encoder == {
        "_target_": "tests.security.components.LinearEncoder",
        "width": 5,
    }
    action, _ = model.act(torch.zeros(2, *model.config.obs_shape))
    assert action.shape == (2, model.config.action_dim)
    config_swap = create_world_model(get_config("tdmpc2:ci"), component_overrides={"encoder": path})
    assert config_swap.config == model.config


def test_component_file_with_another_signature_dreamerv3(
    tmp_path: Path, allow_test_components: None
) -> None:
    """The old encoder's knobs (``mults``, ``kernel``, ...) never reach the new one."""
    path = _component_file(
        tmp_path, "_target_: tests.security.components.VectorMLPEncoder\nhidden: 9\n"
    )
    model = create_world_model(
        "dreamer:ci", obs_shape=(7,), component_overrides={"encoder": str(path)}
    )
    assert type(model.encoder).__name__ == "VectorMLPEncoder" and model.encoder.out_dim == 9
    assert "mults" not in model.config.encoder
    action, _ = model.act(torch.zeros(2, 7))
    assert action.shape == (2, model.config.action_dim)


def test_composed_node_with_another_component_does_not_merge(allow_test_components: None) -> None:
    from worldflux.config import compose_model

    node = compose_model("dreamer/ci")
    node.obs_shape = [7]
    node.encoder = {"_target_": "tests.security.components.VectorMLPEncoder", "hidden": 4}
    model = create_world_model(node)
    assert model.config.encoder == {
        "_target_": "tests.security.components.VectorMLPEncoder",
        "hidden": 4,
    }
    assert model.encoder.out_dim == 4


def test_component_class_takes_the_slot_arguments_it_names() -> None:
    from tests.security.components import LinearEncoder

    model = create_world_model("tdmpc2:ci", component_overrides={"encoder": LinearEncoder})
    assert isinstance(model.encoder, LinearEncoder) and model.encoder.width == 8


def test_component_file_needs_an_allowed_target(tmp_path: Path) -> None:
    path = _component_file(tmp_path, "_target_: tests.security.components.LinearEncoder\n")
    with pytest.raises(UnsafeTargetError, match="allow_targets"):
        create_world_model("tdmpc2:ci", component_overrides={"encoder": str(path)})
    bad = _component_file(tmp_path, "width: 3\n")
    with pytest.raises(ComponentError, match="needs a _target_"):
        create_world_model("tdmpc2:ci", component_overrides={"encoder": str(bad)})
    with pytest.raises(ComponentError, match="valid slots"):
        create_world_model("tdmpc2:ci", component_overrides={"nope": str(bad)})
    with pytest.raises(ComponentError, match="cannot read"):
        create_world_model("tdmpc2:ci", component_overrides={"encoder": "missing.yaml"})
