"""The contract every family keeps, run on every family's ``ci`` preset from the catalog.

No family is named here: the presets are discovered (every ``<dir>:ci`` preset in
``conf/model``), and each capability test runs for the families that declare the capability.
A new family with a ``ci`` preset is tested by adding nothing to this file.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import quiet_trainer
from worldflux import catalog, create_world_model, get_config
from worldflux.config import config_class
from worldflux.core.config import WorldModelConfig
from worldflux.core.instantiate import resolve_target
from worldflux.core.protocols import CAPABILITIES, Sample, check_capabilities
from worldflux.models import FAMILIES

ROOT = Path(__file__).resolve().parents[1]


def ci_presets() -> list[str]:
    """Every preset whose variant is ``ci`` (the tiny test preset each family ships)."""
    return sorted(pid for pid in catalog.presets() if pid.split(":", 1)[1] == "ci")


def _capabilities(preset: str) -> frozenset[str]:
    return resolve_target(get_config(preset)._target_).capabilities


def _pairs(capability: str) -> list[str]:
    return [p for p in ci_presets() if capability in _capabilities(p)]


CI = ci_presets()


# ---------------------------------------------------------------------------- test data
def make_batch(config: WorldModelConfig, b: int = 2, t: int | None = None) -> dict[str, Any]:
    """A replay batch in the ``worldflux.core.model`` format for ``config``'s spaces."""
    gen = torch.Generator().manual_seed(0)
    t = t or int(getattr(config, "batch_length", 8))
    obs = {name: _obs(spec, (b, t), gen) for name, spec in config.modalities().items()}
    action = _actions(config, (b, t), gen)
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    action[:, 0] = 0.0
    terminal = torch.zeros(b, t, dtype=torch.bool)
    return {
        "obs": obs if config.multimodal else obs["obs"],
        "action": action,
        "reward": torch.randn(b, t, generator=gen),
        "first": first,
        "terminal": terminal,
    }


def _obs(spec: Mapping[str, Any], lead: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    shape = (*lead, *spec["shape"])
    if spec["kind"] in ("image", "video"):
        return torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
    return torch.randn(shape, generator=gen)


def _actions(config: WorldModelConfig, lead: tuple[int, ...], gen: torch.Generator) -> Any:
    if config.action_kind == "discrete":
        index = torch.randint(0, config.action_dim, lead, generator=gen)
        return F.one_hot(index, config.action_dim).float()
    return torch.rand(*lead, config.action_dim, generator=gen) * 2 - 1


def _single_obs(config: WorldModelConfig, b: int) -> Any:
    gen = torch.Generator().manual_seed(1)
    obs = {name: _obs(spec, (b,), gen) for name, spec in config.modalities().items()}
    return obs if config.multimodal else obs["obs"]


class _Batches(torch.utils.data.IterableDataset):
    def __init__(self, batch: Mapping[str, Any], n: int) -> None:
        self.batch, self.n = batch, n

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return iter([self.batch] * self.n)


def train_steps(model: Any, batch: Mapping[str, Any], n: int = 1) -> None:
    """Run ``n`` training steps of ``model`` on ``batch`` through the model's own training API.

    The one place the tests touch the update API: Lightning calls ``training_step`` (automatic or
    manual optimisation, with the model's ``configure_optimizers``) exactly as a training run does.
    """
    loader = torch.utils.data.DataLoader(_Batches(batch, n), batch_size=None)
    trainer = quiet_trainer()
    trainer.fit(model, train_dataloaders=loader)


def _snapshot(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------- discovery
def test_every_family_has_a_ci_preset() -> None:
    families = {get_config(p).family for p in CI}
    assert set(FAMILIES) <= families, f"families without a ci preset: {set(FAMILIES) - families}"
    for family in FAMILIES:
        assert config_class(family).__name__.endswith("Config")


@pytest.mark.parametrize("preset", CI)
def test_declared_capabilities_are_implemented(preset: str) -> None:
    cls = resolve_target(get_config(preset)._target_)
    assert cls.capabilities <= set(CAPABILITIES)
    check_capabilities(cls)  # the factory's check, here without building


# ---------------------------------------------------------------------------- core contract
@pytest.mark.parametrize("preset", _pairs("loss"))
def test_loss_backward_and_training_step(preset: str) -> None:
    model = create_world_model(preset)
    batch = make_batch(model.config)
    out = model.loss(batch)
    assert out.total.dim() == 0 and torch.isfinite(out.total)
    out.total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), "no gradient reached"
    model.zero_grad(set_to_none=True)
    before = _snapshot(model)
    train_steps(model, batch, n=1)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "one training step changed no parameter"


@pytest.mark.parametrize("preset", _pairs("loss"))
def test_loss_under_bf16_autocast(preset: str) -> None:
    # trainer.precision=bf16-mixed runs the loss under autocast: carried float32 state must mix
    # with bf16 activations (DreamerV3's GRU update once failed here)
    torch.manual_seed(0)
    model = create_world_model(preset)
    batch = make_batch(model.config)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.loss(batch)
    assert torch.isfinite(out.total)
    out.total.backward()


@pytest.mark.parametrize("preset", _pairs("act"))
def test_act(preset: str) -> None:
    model = create_world_model(preset)
    c = model.config
    obs = _single_obs(c, 3)
    action, state = model.act(obs, None, first=torch.ones(3, dtype=torch.bool), eval_mode=False)
    assert action.shape == (3, c.action_dim) and torch.isfinite(action).all()
    action, _ = model.act(obs, state, first=torch.zeros(3, dtype=torch.bool), eval_mode=True)
    if c.action_kind == "discrete":
        assert torch.equal(action.sum(-1), torch.ones(3))
    else:
        assert action.abs().max() <= 1.0


def _start_state(model: Any, b: int) -> Any:
    if model.supports("initial_state"):
        return model.initial_state(b)
    return model.encode(_single_obs(model.config, b))


@pytest.mark.parametrize("preset", _pairs("rollout"))
def test_rollout(preset: str) -> None:
    model = create_world_model(preset)
    b, h = 2, 3
    actions = _actions(model.config, (b, h), torch.Generator().manual_seed(2))
    out = model.rollout(_start_state(model, b), actions)
    tensors = [v for v in (out.values() if isinstance(out, Mapping) else [out])]
    assert tensors and all(v.shape[:2] == (b, h) for v in tensors if isinstance(v, torch.Tensor))


@pytest.mark.parametrize("preset", _pairs("sample"))
def test_sample_is_reproducible_for_a_generator(preset: str) -> None:
    model = create_world_model(preset).eval()
    context = _single_obs(model.config, 2)
    first = model.sample(context, num_steps=2, generator=torch.Generator().manual_seed(3))
    again = model.sample(context, num_steps=2, generator=torch.Generator().manual_seed(3))
    assert isinstance(first, Sample) and first.num_steps == 2
    assert torch.equal(first.obs, again.obs)


# ---------------------------------------------------------------------------- persistence
def _same_outputs(a: Any, b: Any) -> None:
    for (k, x), (k2, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert k == k2 and torch.equal(x, y), k
    a.eval(), b.eval()
    batch = make_batch(a.config)
    if a.supports("loss"):
        torch.manual_seed(5)
        la = a.loss(batch).total
        torch.manual_seed(5)
        assert torch.equal(la, b.loss(batch).total)
    if a.supports("act"):
        obs = _single_obs(a.config, 2)
        torch.manual_seed(6)
        xa, _ = a.act(obs, eval_mode=True)
        torch.manual_seed(6)
        assert torch.equal(xa, b.act(obs, eval_mode=True)[0])


@pytest.mark.parametrize("preset", CI)
def test_save_load_round_trip(preset: str, tmp_path: Path) -> None:
    model = create_world_model(preset)
    model.save_pretrained(tmp_path / "m", model_id=preset)
    _same_outputs(model, create_world_model(str(tmp_path / "m")))


@pytest.mark.parametrize("preset", CI)
def test_lightning_checkpoint_reload(preset: str, tmp_path: Path) -> None:
    import lightning as L

    model = create_world_model(preset)
    trainer = L.Trainer(
        max_steps=0, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "x.ckpt")
    _same_outputs(model, type(model).load_from_checkpoint(tmp_path / "x.ckpt"))
    _same_outputs(model, create_world_model(str(tmp_path / "x.ckpt")))


# ---------------------------------------------------------------------------- entry point
def _dummy_env(config: WorldModelConfig) -> str:
    kind = next(iter(config.modalities().values()))["kind"]
    return f"dummy/{config.action_kind}_{kind}"


@pytest.mark.parametrize("preset", _pairs("loss"))
def test_a_few_updates_through_the_train_entry_point(preset: str, tmp_path: Path) -> None:
    config = get_config(preset)
    b, t = 2, int(getattr(config, "batch_length", 8))
    # dummy envs run 2 copies; prefill enough steps that whole sequences can be sampled
    prefill, updates = max(16, 4 * t), 3
    steps = prefill + 32
    ratio = updates * b * t / (steps - prefill)
    command = [
        sys.executable,
        "-m",
        "worldflux.train",
        f"model={catalog.id_to_path(preset)}",
        f"env={_dummy_env(config)}",
        f"data.batch_size={b}",
        f"data.batch_length={t}",
        f"data.train_ratio={ratio}",
        f"data.prefill={prefill}",
        f"data.env_steps={steps}",
        "logger=csv",
        "device=cpu",
        "threads=1",
        "export=false",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        f"hydra.run.dir={tmp_path}",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] >= 1
    assert copy.deepcopy(ckpt["hyper_parameters"]["config"])["family"] == config.family


# ---------------------------------------------------------------------------- the checks
def test_factory_refuses_a_capability_the_family_does_not_implement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from worldflux.core.model import WorldModel
    from worldflux.core.protocols import CapabilityError

    preset = CI[0]
    cls = resolve_target(get_config(preset)._target_)
    declared = cls.capabilities
    missing = next(n for n in sorted(CAPABILITIES) if n not in declared)
    monkeypatch.setattr(cls, "capabilities", declared | {missing})
    with pytest.raises(CapabilityError, match=rf"{cls.__name__}.*{missing!r}"):
        create_world_model(preset)
    monkeypatch.setattr(cls, "capabilities", declared | {"smaple"})
    with pytest.raises(CapabilityError, match="(?i)did you mean 'sample'"):
        check_capabilities(cls)

    class NoKeywords(WorldModel):
        capabilities = frozenset({"act"})

        def act(self, obs: Any, state: Any = None) -> Any:  # type: ignore[override]
            return obs, state

    with pytest.raises(CapabilityError, match="first.*eval_mode.*task"):
        check_capabilities(NoKeywords)

    class Stubbed(WorldModel):
        capabilities = frozenset({"decode"})

    with pytest.raises(CapabilityError, match=r"does not implement decode\(\)"):
        check_capabilities(Stubbed)


def test_device_errors_are_clear() -> None:
    from worldflux.errors import ConfigError

    with pytest.raises(ConfigError, match="invalid device"):
        create_world_model(CI[0], device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            create_world_model(CI[0], device="cuda")


@pytest.mark.parametrize("preset", CI)
def test_meta_build_allocates_no_storage(preset: str) -> None:
    model = create_world_model(preset, device="meta")
    assert {t.device.type for t in model.state_dict().values()} == {"meta"}
