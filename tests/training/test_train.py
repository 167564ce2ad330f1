"""The training entry point: smoke runs on dummy environments, exports, and early errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from worldflux import catalog
from worldflux.errors import ConfigError

#: (preset, env config, extra overrides) of the families' tiny presets.
FAMILY_RUNS = {
    "dreamer/ci": (
        "dummy/discrete_image",
        ["data.batch_size=4", "data.batch_length=8", "data.train_ratio=32"],
    ),
    "tdmpc2/ci": (
        "dummy/continuous_vector",
        ["data.batch_size=16", "data.batch_length=4", "data.train_ratio=64"],
    ),
}


def _available(preset: str) -> bool:
    return (catalog.conf_dir() / "model" / f"{preset}.yaml").is_file()


@pytest.mark.parametrize("preset", sorted(FAMILY_RUNS))
def test_train_smoke_writes_checkpoint_logs_and_export(
    preset: str, compose_train: Any, tmp_path: Path
) -> None:
    if not _available(preset):
        pytest.fail(f"preset {preset} is missing from conf/model")
    from worldflux import create_world_model
    from worldflux.train import train

    env, extra = FAMILY_RUNS[preset]
    cfg = compose_train(
        f"model={preset}", f"env={env}", "callbacks.checkpoint.every_n_updates=5", *extra
    )
    metrics = train(cfg)
    assert metrics["env/steps"] == 80
    assert any(k.startswith("train/loss/") for k in metrics)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    loaded = create_world_model(str(tmp_path / "export"))
    assert loaded.config.family == cfg.model.family
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["OnlineDataModule"]["collector"]["env_steps"] == 80


def test_unknown_env_id_fails_before_training(compose_train: Any, tmp_path: Path) -> None:
    from worldflux.train import train

    cfg = compose_train("model=tdmpc2/ci", "env=catch_vector", "env.id=cach")
    with pytest.raises(ConfigError, match="Did you mean 'catch'"):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()


def test_spaces_the_model_cannot_take_are_named(compose_train: Any, tmp_path: Path) -> None:
    from worldflux.train import train

    cfg = compose_train("model=tdmpc2/ci", "env=catch")  # image obs + discrete actions
    with pytest.raises(ConfigError, match=r"tdmpc2:ci.*embedded:catch.*discrete"):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()


def test_bad_overrides_fail_at_composition(compose_train: Any) -> None:
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="data.batch_sise"):
        compose_train("data.batch_sise=3")
    with pytest.raises(ConfigCompositionException, match="env/no_such_env"):
        compose_train("env=no_such_env")


def test_bad_model_field_names_the_key(compose_train: Any) -> None:
    from worldflux.train import train

    cfg = compose_train("model=tdmpc2/ci", "env=catch_vector", "+model.mlp_dimm=3")
    with pytest.raises(ConfigError, match="mlp_dimm"):
        train(cfg)


def test_nan_loss_stops_a_real_run(compose_train: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from worldflux.models.tdmpc2.training import TDMPC2Training
    from worldflux.train import train
    from worldflux.training.callbacks import NonFiniteLossError

    original = TDMPC2Training.world_model_loss

    def nan_loss(self: Any, w: Any) -> Any:  # a NaN config value is refused, so poison the loss
        out, zs = original(self, w)
        out.total = out.total * float("nan")
        return out, zs

    monkeypatch.setattr(TDMPC2Training, "world_model_loss", nan_loss)
    cfg = compose_train(
        "model=tdmpc2/ci",
        "env=dummy/continuous_vector",
        "data.batch_size=8",
        "data.batch_length=4",
        "data.train_ratio=32",
    )
    with pytest.raises(NonFiniteLossError, match=r"update \d+.*train/loss/\w+ = nan"):
        train(cfg)


def test_model_ids_and_aliases_are_normalised() -> None:
    from worldflux.train import _normalise_argv

    assert _normalise_argv(["model=tdmpc2:ci", "seed=1"]) == ["model=tdmpc2/ci", "seed=1"]
    assert _normalise_argv(["model=tdmpc2-ci"]) == ["model=tdmpc2/ci"]
    with pytest.raises(SystemExit):
        _normalise_argv(["model=tdmpc3:ci"])


@pytest.mark.parametrize(
    ("experiment", "family"), [("quickstart", "tdmpc2"), ("quickstart_dreamer", "dreamerv3")]
)
def test_experiments_compose(experiment: str, family: str, compose_train: Any) -> None:
    cfg = compose_train(f"experiment={experiment}")
    assert cfg.model.family == family and cfg.device == "cpu"


def test_run_names_are_valid_override_values() -> None:
    from worldflux.train import run_name

    assert run_name("") == "default"
    assert run_name("model=tdmpc2/ci,seed=1") == "model-tdmpc2-ci_seed-1"
