"""The instantiation gate: exact registered names, no attribute walking, user prefixes."""

from __future__ import annotations

import pytest

from worldflux.core.instantiate import (
    ENV_VAR,
    allow_prefixes,
    check_target,
    instantiate,
    resolve_target,
    shipped_targets,
    user_prefixes,
)
from worldflux.errors import ComponentError, UnsafeTargetError

#: Names that reach code through prefixes, re-exports or module chains: all refused.
HOSTILE = [
    "os.system",
    "builtins.eval",
    "subprocess.Popen",
    "torch.nn.functional.torch.hub.load",
    "torch.hub.load",
    "torch.nn.functional",
    "torch.nn.modules.module.torch.hub.load",
    "torch.optim.torch.hub.load",
    "worldflux.backends.subprocess.Popen",
    "worldflux.backends.subprocess",
    "worldflux.backends.OfficialBackendHandle.launch",
    "worldflux.training.callbacks.L",
    "worldflux.training.loggers.Any",
    "worldflux.models.dreamerv3.module.torch.hub.load",
    "worldflux.models.dreamerv3.module:torch",
    "worldflux.training.setup.keep_freed_memory",
    "torch.nn.Linear.__init__.__globals__",
    "worldflux..backends",
    "",
    "os:system",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafeTargetError):
        resolve_target(name)


@pytest.mark.parametrize("value", [None, 3, ["os.system"], {"a": 1}])
def test_non_string_targets_are_refused(value: object) -> None:
    with pytest.raises(UnsafeTargetError):
        check_target(value)  # type: ignore[arg-type]


def test_every_shipped_target_resolves_to_its_definition() -> None:
    names = shipped_targets()
    assert "worldflux.models.dreamerv3.networks.SimpleEncoder" in names
    assert "worldflux.training.loggers.csv" in names
    for name in names:
        obj = resolve_target(name)
        assert f"{obj.__module__}.{obj.__qualname__}" == name


@pytest.mark.parametrize(
    "name", ["torch.nn.Linear", "torch.nn.GRUCell", "torch.optim.Adam", "torch.optim.AdamW"]
)
def test_named_torch_modules_and_optimisers_are_admitted(name: str) -> None:
    import torch

    obj = resolve_target(name)
    assert issubclass(obj, (torch.nn.Module, torch.optim.Optimizer))


def test_worldflux_callbacks_loggers_and_optimisers_are_admitted() -> None:
    assert resolve_target("worldflux.training.callbacks.PeriodicCheckpoint")
    assert resolve_target("worldflux.training.loggers.wandb")
    assert resolve_target("worldflux.optim.laprop.LaProp")


def test_user_prefix_from_run_config(sentinel) -> None:
    name = "tests.security.components.LinearEncoder"
    with pytest.raises(UnsafeTargetError, match="allow_targets"):
        resolve_target(name)
    allow_prefixes(["tests.security."])
    assert resolve_target(name).__name__ == "LinearEncoder"
    # still no walking and no re-exports under an allowed prefix
    for bad in ("tests.security.components.Popen", "tests.security.components.torch.hub.load"):
        with pytest.raises(UnsafeTargetError):
            resolve_target(bad)
    with pytest.raises(UnsafeTargetError):
        instantiate(
            {"_target_": "tests.security.components.Popen", "args": ["touch", str(sentinel)]}
        )


def test_user_prefix_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "mypkg., tests.security.components.LinearEncoder")
    assert user_prefixes() == ("mypkg", "tests.security.components.LinearEncoder")
    assert resolve_target("tests.security.components:LinearEncoder").__name__ == "LinearEncoder"
    with pytest.raises(UnsafeTargetError):
        resolve_target("tests.security.components.VectorMLPEncoder")


@pytest.mark.parametrize(
    "prefix", ["", ".", "os.", "subprocess", "builtins.", "torch", "worldflux.", "a..b", "x y", 3]
)
def test_dangerous_or_malformed_prefixes_are_refused(prefix: object) -> None:
    with pytest.raises(UnsafeTargetError):
        allow_prefixes([prefix])  # type: ignore[list-item]


def test_dangerous_prefix_in_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "os.")
    with pytest.raises(UnsafeTargetError, match=ENV_VAR):
        resolve_target("os.system")


def test_instantiate_offers_runtime_sizes_and_names_bad_arguments() -> None:
    import torch

    layer = instantiate({"_target_": "torch.nn.Linear", "in_features": 3}, out_features=2, depth=7)
    assert isinstance(layer, torch.nn.Linear) and layer.out_features == 2
    with pytest.raises(ComponentError, match="torch.nn.Linear"):
        instantiate({"_target_": "torch.nn.Linear", "in_features": 3, "mults": [1]})
    with pytest.raises(ComponentError, match="_args_"):
        instantiate({"_target_": "torch.nn.Linear", "_args_": [1, 2]})
