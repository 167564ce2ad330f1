"""``trainer=fsdp`` without launching ranks: options, wrap units, sharded gradient norms, the
trainer it builds, and resuming from sharded checkpoint directories (fast, one process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from worldflux.core.training import _split_decay
from worldflux.errors import ConfigError
from worldflux.factory import create_world_model
from worldflux.models import FAMILIES
from worldflux.training.checkpoint import SHARDED_METADATA, resume_path
from worldflux.training.sharded import sharded_grad_norm
from worldflux.training.strategy import (
    FSDP_OPTIONS,
    WorldModelFSDP,
    build_fsdp,
    fsdp_options,
    wrap_classes,
)


@pytest.mark.parametrize(
    ("node", "field"),
    [
        ({"sharding": "zero3"}, "trainer.fsdp.sharding"),
        ({"state_dict": "local"}, "trainer.fsdp.state_dict"),
        ({"wrap": "Block"}, "trainer.fsdp.wrap"),
        ({"wrap": [""]}, "trainer.fsdp.wrap"),
        ({"activation_checkpointing": "yes"}, "trainer.fsdp.activation_checkpointing"),
        ({"cpu_offload": 1}, "trainer.fsdp.cpu_offload"),
        ({"shardng": "full"}, "trainer.fsdp.shardng"),
    ],
)
def test_bad_fsdp_options_name_the_field(node: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        fsdp_options(node)


def test_fsdp_options_defaults_match_the_trainer_config() -> None:
    from omegaconf import OmegaConf

    from worldflux.catalog import conf_dir

    node = OmegaConf.to_container(OmegaConf.load(Path(conf_dir()) / "trainer" / "fsdp.yaml"))
    assert isinstance(node, dict) and node["strategy"] == "fsdp"
    assert fsdp_options(node["fsdp"]) == FSDP_OPTIONS


def _tiny(preset: str) -> Any:
    return create_world_model(preset, obs_shape=(8,), action_dim=2)  # tiny: built on the CPU


def test_wrap_units_are_the_familys_blocks_and_typos_are_named() -> None:
    model = _tiny("tdmpc2:ci")
    names = {c.__name__ for c in wrap_classes(model)}
    assert names == set(type(model).fsdp_wrap_units)
    assert {c.__name__ for c in wrap_classes(model, ["QEnsemble"])} == {"QEnsemble"}
    with pytest.raises(ConfigError, match=r"trainer\.fsdp\.wrap names 'QEnsembel'.*QEnsemble"):
        wrap_classes(model, ["QEnsembel"])


def test_every_family_declares_wrap_units_a_tuple_of_class_names() -> None:
    import importlib

    for family in FAMILIES:
        module = importlib.import_module(f"worldflux.models.{family}.module")
        from worldflux.core.model import WorldModel

        classes = [
            c for c in vars(module).values()
            if isinstance(c, type) and issubclass(c, WorldModel) and c.__module__ == module.__name__
        ]  # fmt: skip
        for cls in classes:
            units = cls.fsdp_wrap_units
            assert isinstance(units, tuple) and all(isinstance(u, str) and u for u in units), cls


def _public_methods(cls: type) -> set[str]:
    return {
        name for name, value in vars(cls).items()
        if callable(value) and not name.startswith("_") and name != "forward"
    }  # fmt: skip


def test_every_declared_unit_is_entered_through_forward_only() -> None:
    # FSDP gathers a unit's parameters in its forward hook; a public method called from outside
    # (a decoder's ``losses``, the RSSM's ``img_step``) would see this rank's shard.
    import importlib
    import inspect
    import pkgutil

    import worldflux.nn

    for family in FAMILIES:
        package = importlib.import_module(f"worldflux.models.{family}")
        found: dict[str, list[type]] = {}
        for pkg in (package, worldflux.nn):
            for info in pkgutil.iter_modules(pkg.__path__):
                module = importlib.import_module(f"{pkg.__name__}.{info.name}")
                for name, cls in inspect.getmembers(module, inspect.isclass):
                    if issubclass(cls, nn.Module) and cls.__module__ == module.__name__:
                        found.setdefault(name, []).append(cls)
        model_module = importlib.import_module(f"worldflux.models.{family}.module")
        for model_cls in vars(model_module).values():
            for unit in (
                getattr(model_cls, "fsdp_wrap_units", ()) if isinstance(model_cls, type) else ()
            ):
                assert unit in found, f"{family}: wrap unit {unit!r} is no module class"
                for cls in found[unit]:
                    assert not _public_methods(cls), (family, unit, _public_methods(cls))


def test_build_fsdp_makes_a_strategy_lightning_runs_on_cpu() -> None:
    import lightning as L

    model = _tiny("tdmpc2:ci")
    options = fsdp_options({"sharding": "grad_op", "activation_checkpointing": True})
    strategy = build_fsdp(options, model)
    assert isinstance(strategy, WorldModelFSDP)
    assert strategy.sharding_strategy.name == "SHARD_GRAD_OP"
    assert set(strategy.wrap_units) == set(type(model).fsdp_wrap_units)
    assert strategy._activation_checkpointing_kwargs  # the same classes are recomputed
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy=strategy, logger=False, enable_progress_bar=False
    )  # Lightning refuses the string "fsdp" without a GPU
    assert trainer.strategy is strategy


def test_activation_checkpointing_needs_wrap_units() -> None:
    model = _tiny("tdmpc2:ci")
    options = fsdp_options({"wrap": [], "activation_checkpointing": True})
    with pytest.raises(ConfigError, match=r"activation_checkpointing=true .* TDMPC2 has none"):
        build_fsdp(options, model)


def test_train_builds_the_fsdp_strategy_from_the_trainer_config(
    compose_train: Any, tmp_path: Path
) -> None:
    from worldflux.training import setup

    cfg = compose_train("trainer=fsdp", "trainer.fsdp.wrap=[QEnsemble]", "trainer.devices=2")
    model = setup.build_model(cfg, setup.data_spec(cfg))
    trainer = setup.build_trainer(cfg, tmp_path, model)
    assert isinstance(trainer.strategy, WorldModelFSDP)
    assert trainer.strategy.wrap_units == ("QEnsemble",)
    with pytest.raises(ConfigError, match="needs the model"):
        setup.build_trainer(cfg, tmp_path)


def test_sharded_grad_norm_without_ranks_is_the_plain_norm() -> None:
    grads = [torch.tensor([3.0]), torch.tensor([4.0, 0.0])]
    assert float(sharded_grad_norm(grads)) == pytest.approx(5.0)
    assert float(sharded_grad_norm([])) == 0.0


class _Shards:
    """Stands in for FSDP: this process holds one of two equal shards of the gradient."""

    def grad_norm(self, params: Any) -> torch.Tensor:
        local = sharded_grad_norm([p.grad for p in params if p.grad is not None])
        return local * 2**0.5  # the other shard has the same norm


def test_sharded_clipping_scales_by_the_whole_gradients_norm() -> None:
    from worldflux.core.training import PhaseTraining

    params = [nn.Parameter(torch.zeros(2))]
    params[0].grad = torch.tensor([3.0, 4.0])
    holder = PhaseTraining.__new__(PhaseTraining)
    holder.sharding = _Shards()
    norm = holder._clip_gradients(params, max_norm=1.0)
    assert float(norm) == pytest.approx(5.0 * 2**0.5)
    expected = torch.tensor([3.0, 4.0]) / (5.0 * 2**0.5 + 1e-6)
    torch.testing.assert_close(params[0].grad, expected)


def test_weight_decay_groups_use_the_rank_before_flattening() -> None:
    flat_matrix = nn.Parameter(torch.zeros(6))
    flat_matrix.unsharded_dim = 2  # type: ignore[attr-defined]  # what the strategy records
    bias = nn.Parameter(torch.zeros(3))
    groups = _split_decay([{"params": [flat_matrix, bias]}], 0.1)
    decayed = [g for g in groups if g["weight_decay"] == 0.1]
    assert decayed and decayed[0]["params"] == [flat_matrix]


def test_resume_finds_sharded_checkpoint_directories(tmp_path: Path) -> None:
    ckpts = tmp_path / "checkpoints"
    (ckpts / "last.ckpt").mkdir(parents=True)
    assert resume_path(ckpts, "auto") is None  # a directory without shards' metadata
    (ckpts / "last.ckpt" / SHARDED_METADATA).write_bytes(b"")
    assert resume_path(ckpts, "auto") == str(ckpts / "last.ckpt")
    assert resume_path(ckpts, str(tmp_path)) == str(ckpts / "last.ckpt")
    assert resume_path(ckpts, str(ckpts / "last.ckpt")) == str(ckpts / "last.ckpt")


def test_consolidate_refuses_what_is_not_a_sharded_checkpoint(tmp_path: Path) -> None:
    from worldflux.errors import ModelFileError
    from worldflux.training.checkpoint import consolidate

    with pytest.raises(ModelFileError, match="not a sharded checkpoint directory"):
        consolidate(tmp_path, tmp_path / "out.ckpt")
