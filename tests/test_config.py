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
