"""The encoder contract and the shared ``encoder`` group: one family's encoder in another's slot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from worldflux import create_world_model, get_config
from worldflux.errors import ComponentError, ShapeError
from worldflux.models.dreamerv3.networks import SimpleEncoder
from worldflux.models.tdmpc2.networks import Encoder
from worldflux.nn.encoders import check_host_sizes, observation_modalities

IMAGE = (3, 64, 64)


def test_observation_spec_forms() -> None:
    assert observation_modalities(obs_shape=[5]) == {"obs": {"kind": "vector", "shape": [5]}}
    assert observation_modalities(obs_shape=IMAGE)["obs"]["kind"] == "image"
    spec = {"cam": {"kind": "image", "shape": [3, 8, 8]}}
    assert observation_modalities(spec) == spec
    with pytest.raises(ComponentError, match="exactly one"):
        observation_modalities(spec, [5])
    with pytest.raises(ComponentError, match="obs_shape"):
        observation_modalities(obs_shape=[2, 3])
    with pytest.raises(ComponentError, match=r"unexpected arguments \['widht'\]"):
        check_host_sizes("X", {"depth": 1, "widht": 3})


def test_both_encoders_take_both_forms_and_report_out_dim() -> None:
    dreamer = SimpleEncoder(obs_shape=[7], units=16, layers=1)
    assert dreamer.out_dim == 16
    x = torch.randn(4, 7)
    assert torch.equal(dreamer(x), dreamer({"obs": x}))
    tdmpc = Encoder(
        modalities={"joints": {"kind": "vector", "shape": [7]}},
        latent_dim=16,
        enc_dim=8,
        simnorm_dim=4,
        depth=3,
        units=5,
    )  # DreamerV3's host sizes ignored
    assert tdmpc.out_dim == 16 and tdmpc({"joints": x}).shape == (4, 16)
    with pytest.raises(ShapeError, match="lack modalities"):
        tdmpc({"cam": x})
    # a host latent: projection to latent_dim ending in SimNorm (groups of 4 sum to one)
    projected = SimpleEncoder(obs_shape=[7], units=16, layers=1, latent_dim=8, simnorm_dim=4)
    z = projected(x)
    assert projected.out_dim == 8 and torch.allclose(z.view(4, 2, 4).sum(-1), torch.ones(4, 2))


@pytest.mark.parametrize("shape", [IMAGE, (24,)], ids=["image", "vector"])
def test_tdmpc2_trains_with_dreamerv3_encoder(shape: tuple[int, ...]) -> None:
    model = create_world_model(
        "tdmpc2:ci", obs_shape=shape, component_overrides={"encoder": "dreamerv3_simple"}
    )
    assert isinstance(model.encoder, SimpleEncoder)
    assert (model.encoder.img_keys if len(shape) == 3 else model.encoder.vec_keys) == ["obs"]
    assert model.encoder.out_dim == model.config.latent_dim
    g = torch.Generator().manual_seed(0)
    b, t = 4, model.config.batch_length
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    batch = {
        "obs": torch.randint(0, 256, (b, t, *shape), dtype=torch.uint8, generator=g)
        if len(shape) == 3
        else torch.randn(b, t, *shape, generator=g),
        "action": torch.rand(b, t, model.config.action_dim, generator=g) * 2 - 1,
        "reward": torch.rand(b, t, generator=g),
        "first": first,
        "terminal": torch.zeros(b, t, dtype=torch.bool),
    }
    before = [p.detach().clone() for p in model.encoder.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = model.loss(batch).total
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, p) for a, p in zip(before, model.encoder.parameters()))
    action, _ = model.act(batch["obs"][:, 0], eval_mode=True)
    assert action.shape == (b, model.config.action_dim)


def test_dreamerv3_builds_with_tdmpc2_encoder() -> None:
    model = create_world_model("dreamer:ci", component_overrides={"encoder": "tdmpc2_simnorm"})
    assert isinstance(model.encoder, Encoder)
    obs = torch.randint(0, 256, (2, 3, *IMAGE), dtype=torch.uint8)
    assert model.encode(obs).shape == (2, 3, model.encoder.out_dim)


def test_shared_group_composes_on_the_command_line() -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import worldflux.train  # noqa: F401  (registers the run-name resolver)
    from worldflux.catalog import conf_dir

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(conf_dir()), version_base="1.3"):
            # the shared group's package is model.encoder, so Hydra names it model/encoder
            cfg = compose("train", overrides=["model=tdmpc2/ci", "model/encoder=dreamerv3_simple"])
            assert cfg.model.encoder._target_.endswith("dreamerv3.networks.SimpleEncoder")
            assert "num_channels" not in cfg.model.encoder  # swapped, not merged
            cfg = compose("train", overrides=["model=dreamer/ci"])
            assert get_config("dreamer:ci").encoder == dict(cfg.model.encoder)
    finally:
        GlobalHydra.instance().clear()


@pytest.mark.slow
def test_train_entry_point_with_a_swapped_encoder(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "worldflux.train",
        "model=tdmpc2/ci",
        "env=dummy/continuous_image",
        "+env.image_size=64",
        "model/encoder=dreamerv3_simple",
        "device=cpu",
        "threads=1",
        "data.prefill=32",
        "data.env_steps=48",
        "data.batch_size=4",
        "data.batch_length=4",
        "data.train_ratio=16",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={tmp_path}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = create_world_model(str(tmp_path / "export"))
    assert isinstance(loaded.encoder, SimpleEncoder)
