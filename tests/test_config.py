"""get_config: composition, typed validation, overrides and their errors."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from worldflux import catalog, get_config
from worldflux.errors import ConfigError


def test_seed_example_deter_dim() -> None:
    config = get_config("dreamerv3:size12m")
    assert type(config).__name__ == "DreamerV3Config"
    assert config.deter_dim == 2048


def test_seed_example_modify() -> None:
    config = get_config("tdmpc2:5m", obs_shape=(100,))
    assert type(config).__name__ == "TDMPC2Config"
    assert list(config.obs_shape) == [100]
    config.num_q_networks = 10
    assert config.num_q_networks == 10


def test_alias_composes_like_its_target() -> None:
    assert get_config("dreamer-large") == get_config("dreamerv3:size200m")


def test_overrides_apply_and_nested_fields_are_reachable() -> None:
    config = get_config("dreamerv3:size12m", action_dim=4, units=128)
    assert config.action_dim == 4 and config.units == 128
    enc = get_config("dreamerv3:size12m").encoder
    key = next(k for k in enc if not k.startswith("_"))
    value = enc[key]
    new = (not value) if isinstance(value, bool) else value
    config = get_config("dreamerv3:size12m", **{f"encoder.{key}": new})
    assert config.encoder[key] == new


def test_unknown_key_names_key_and_suggests() -> None:
    with pytest.raises(ConfigError, match=r"deter_dmi.*deter_dim"):
        get_config("dreamerv3:size12m", deter_dmi=10)
    with pytest.raises(ConfigError, match="encoder.nope"):
        get_config("dreamerv3:size12m", **{"encoder.nope": 1})


def test_wrong_type_names_field() -> None:
    with pytest.raises(ConfigError, match="deter_dim"):
        get_config("dreamerv3:size12m", deter_dim="large")


def test_bad_format_states_expected_format() -> None:
    with pytest.raises(ValueError, match="type:size"):
        get_config("not-a-model")
    with pytest.raises(ValueError, match="tdmpc2:5m"):
        get_config("tdmpc2:5mm")


def test_works_inside_a_running_hydra_app() -> None:
    with initialize_config_dir(config_dir=str(catalog.conf_dir()), version_base="1.3"):
        outer = compose(overrides=["+model=tdmpc2/5m"])
        assert get_config("dreamerv3:size12m").deter_dim == 2048
        assert compose(overrides=["+model=dreamer"]).model.family == "dreamerv3"
    assert outer.model.family == "tdmpc2"


# ---------------------------------------------------------------------------- strict fields
def _preset_of_each_family() -> list[str]:
    """Each family's tiny ``ci`` preset (tests/test_contract.py checks every family has one)."""
    return sorted(pid for pid in catalog.presets() if pid.split(":", 1)[1] == "ci")


@pytest.mark.parametrize("preset", _preset_of_each_family())
def test_unknown_attribute_is_refused_with_the_closest_names(preset: str) -> None:
    config = get_config(preset)
    name = next(f for f in ("action_dim", "obs_shape") if hasattr(config, f))
    typo = name[:-2] + name[-1] + name[-2]  # swap the last two letters
    with pytest.raises(ConfigError, match=rf"{typo}.*[Dd]id you mean '{name}'"):
        setattr(config, typo, 3)
    with pytest.raises(AttributeError, match=f"(?i)did you mean '{name}'"):
        getattr(config, typo)
    setattr(config, name, getattr(config, name))  # real fields stay settable


def test_misspelled_tdmpc2_field_suggests_the_real_one() -> None:
    config = get_config("tdmpc2:5m")
    with pytest.raises(ConfigError, match="(?i)did you mean 'num_q_networks'"):
        config.num_q_netwroks = 3
    config.num_q = 4  # a property with a setter is not a typo
    assert config.num_q_networks == 4


@pytest.mark.parametrize(
    "overrides",
    [
        {"obs_shape": "8"},
        {"obs_shape": [8.0]},
        {"obs_shape": [True]},
        {"action_dim": "6"},
        {"action_dim": 6.0},
        {"action_dim": True},
    ],
)
def test_values_are_never_coerced(overrides: dict) -> None:
    for preset in _preset_of_each_family():
        field = next(iter(overrides))
        with pytest.raises(ConfigError, match=field):
            get_config(preset, **overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {"dynamics.blocks": 0},
        {"encoder.kernel": 0},
        {"slow_every": 0},
        {"encoder.mults": [2, 0, 4, 4]},
        {"lr": 0.0},
        {"lam": 1.5},
        {"batch_length": 1},
        {"policy.unimix": -0.1},
        {"reward_head.bins": 1},
        {"loss_scales": {"rew": -1.0}},
        {"retnorm_perclo": 99.0},
    ],
)
def test_dreamerv3_ranges_name_the_field(overrides: dict) -> None:
    field = next(iter(overrides)).split(".")[0]
    with pytest.raises(ConfigError, match=field.replace("_", ".")):
        get_config("dreamer:ci", **overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {"num_q_networks": 1},
        {"tau": 1.5},
        {"discount": 0.0},
        {"temperature": 0.0},
        {"q_ensemble.dropout": 1.0},
        {"encoder.num_channels": 0},
        {"task_episode_lengths": [0]},
        {"log_std_min": 3.0},
        {"mpc": 1},
    ],
)
def test_tdmpc2_ranges_name_the_field(overrides: dict) -> None:
    field = next(iter(overrides)).split(".")[0]
    with pytest.raises(ConfigError, match=field.replace("_", ".")):
        get_config("tdmpc2:ci", **overrides)


def test_range_errors_come_before_zero_division() -> None:
    from worldflux import create_world_model

    for key in ("dynamics.blocks", "encoder.kernel", "slow_every"):
        with pytest.raises(ConfigError, match=key):
            create_world_model("dreamer:ci", **{key: 0})


# ---------------------------------------------------------------------------- modalities
VIDEO = {"clip": {"kind": "video", "shape": [4, 3, 16, 16]}}


def test_video_modality_parses_in_the_config_layer() -> None:
    from worldflux.core.config import WorldModelConfig

    config = WorldModelConfig(_target_="x.Y", family="any", observation_modalities=VIDEO)
    assert config.modalities() == {"clip": {"kind": "video", "shape": [4, 3, 16, 16]}}
    inferred = WorldModelConfig(_target_="x.Y", family="any", obs_shape=[4, 3, 16, 16])
    assert inferred.modalities()["obs"]["kind"] == "video"
    with pytest.raises(ConfigError, match=r"\(T, C, H, W\)"):
        WorldModelConfig(
            _target_="x.Y",
            family="any",
            observation_modalities={"clip": {"kind": "video", "shape": [3, 16, 16]}},
        )
    with pytest.raises(ConfigError, match="unknown keys"):
        WorldModelConfig(
            _target_="x.Y",
            family="any",
            observation_modalities={"clip": {"kind": "video", "shape": [4, 3, 8, 8], "fps": 4}},
        )


@pytest.mark.parametrize("preset", _preset_of_each_family())
def test_families_that_cannot_take_video_refuse_it_clearly(preset: str) -> None:
    config = get_config(preset)
    if "video" in config.SUPPORTED_MODALITIES:
        pytest.skip(f"{config.family} takes video")
    with pytest.raises(ConfigError, match=r"cannot take observation modality 'clip'.*video"):
        get_config(preset, observation_modalities=VIDEO)
