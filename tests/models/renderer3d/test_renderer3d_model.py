"""renderer3d: parameter counts against torch-gqn, losses, gradients and bad-input errors."""

from __future__ import annotations

import pytest
import torch

from worldflux import create_world_model, get_config
from worldflux.errors import ConfigError, ShapeError
from worldflux.factory import build
from worldflux.models.renderer3d import rays as R
from worldflux.models.renderer3d.evaluate import nearest_view, psnr, ssim
from worldflux.models.renderer3d.module import time_contrastive

#: Parameters of iShohei220/torch-gqn @ c0156c7 GQN(representation="pool", shared_core=True),
#: measured by building it: phi, inference_core, generation_core, eta_pi + eta_g + eta_e.
TORCH_GQN = {"phi": 1_962_368, "inference": 25_372_560, "generation": 22_095_616, "heads": 38_799}

MULTIVIEW = {
    "views": {"kind": "image", "shape": (9, 16, 16)},
    "poses": {"kind": "vector", "shape": (21,)},
}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_gqn_parts_match_torch_gqn_exactly() -> None:
    model = create_world_model("renderer3d:gqn", device="meta")
    r = model.renderer
    assert _count(model.encoder) == TORCH_GQN["phi"]
    assert _count(r.inference_core) == TORCH_GQN["inference"]
    assert _count(r.generation_core) == TORCH_GQN["generation"]
    assert _count(r.eta_pi) + _count(r.eta_g) + _count(r.eta_e) == TORCH_GQN["heads"]
    static = build(get_config("renderer3d:gqn", action_conditioned=False), device="meta")
    assert static.num_parameters() == sum(TORCH_GQN.values()) == 49_469_343
    assert static.dynamics is None and [p.name for p in static.schedule.phases] == ["model"]


def _multiview_batch(b: int = 2, t: int = 3, v: int = 3) -> dict:
    gen = torch.Generator().manual_seed(0)
    poses = R.orbit_poses(b * t * v).reshape(b, t, v * 7)
    return {
        "obs": {
            "views": torch.randint(0, 256, (b, t, 3 * v, 16, 16), dtype=torch.uint8, generator=gen),
            "poses": poses,
        },
        "action": torch.rand(b, t, 2, generator=gen) * 2 - 1,
    }


def test_multiview_loss_trains_every_part() -> None:
    model = create_world_model("renderer3d:ci", observation_modalities=MULTIVIEW)
    out = model.loss(_multiview_batch())
    assert set(out.components) == {"render_coarse", "render_fine", "tcn", "dynamics"}
    out.total.backward()
    for name in ("encoder", "renderer", "dynamics"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None for g in grads), f"{name} got no gradient"
    assert model.encode(_multiview_batch()["obs"]).shape == (2, 3, 16)


def test_tiny_gqn_elbo_and_render() -> None:
    model = create_world_model(
        "renderer3d:gqn",
        obs_shape=(3, 16, 16),
        latent_dim=8,
        core_channels=4,
        gqn_steps=2,
        observation_modalities=MULTIVIEW,
    )
    batch = _multiview_batch()
    out = model.loss(batch)
    assert {"nll", "kl", "dynamics"} <= set(out.components) and torch.isfinite(out.total)
    out.total.backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    z = model.encode({k: v[:, 0] for k, v in batch["obs"].items()})
    img = model.render(z, R.orbit_poses(4)[None].expand(2, -1, -1))
    assert img.shape == (2, 4, 3, 16, 16) and img.min() >= 0 and img.max() <= 1


def test_gqn_schedules_follow_the_reference() -> None:
    model = create_world_model(
        "renderer3d:gqn", obs_shape=(3, 16, 16), latent_dim=8, core_channels=4, gqn_steps=1
    )
    assert model.renderer.pixel_sigma(0) == 2.0
    assert model.renderer.pixel_sigma(100_000) == pytest.approx(1.35)
    assert model.renderer.pixel_sigma(10**6) == 0.7
    opt = torch.optim.Adam(model.encoder.parameters(), lr=5e-4)
    phase = model.schedule.phases[0]
    model.phase_steps["model"] = 800_000
    model._apply_warmup(phase, opt)
    assert opt.param_groups[0]["lr"] == pytest.approx(2.75e-4)
    model.phase_steps["model"] = 2_000_000
    model._apply_warmup(phase, opt)
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-5)


def test_time_contrastive_by_hand() -> None:
    # B=1, T=2, V=2, Z=2: view 1 equals view 0 at each step, and the steps are orthogonal
    z = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]]])
    # pos distance 0, neg distance |e1 - e2|^2 = 2: relu(0 - 2 + m)
    assert float(time_contrastive(z, 0.5)) == 0.0
    assert float(time_contrastive(z, 3.0)) == pytest.approx(1.0)


def test_composite_by_hand() -> None:
    rgb = torch.tensor([[[[1.0, 0, 0], [0, 1.0, 0]]]])  # (B=1, R=1, S=2, 3)
    sigma = torch.tensor([[[torch.log(torch.tensor(2.0)), 100.0]]])
    depths = torch.tensor([[[1.0, 2.0]]])
    colour, weights = R.composite(rgb, sigma, depths, torch.tensor([[[1.0, 0, 0]]]))
    # alpha_0 = 1 - exp(-ln 2) = 0.5; the second sample absorbs the rest
    assert weights[0, 0].tolist() == pytest.approx([0.5, 0.5], abs=1e-6)
    assert colour[0, 0].tolist() == pytest.approx([0.5, 0.5, 0.0], abs=1e-6)


def test_image_metrics_and_baseline() -> None:
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(ssim(x, x), torch.ones(2))
    assert float(psnr(x, (x + 0.1).clamp(0, 1)).min()) > 19.0
    images = torch.arange(3.0).view(1, 3, 1, 1, 1).expand(1, 3, 3, 2, 2)
    poses = torch.eye(7)[:3][None]
    picked = nearest_view(images, poses, poses[:, [2, 0]])
    assert picked[0, :, 0, 0, 0].tolist() == [2.0, 0.0]


# ---------------------------------------------------------------------------- bad input
def test_poses_of_the_wrong_shape_or_non_finite() -> None:
    model = create_world_model("renderer3d:ci", observation_modalities=MULTIVIEW)
    obs = _multiview_batch()["obs"]
    with pytest.raises(ShapeError, match=r"poses must be \(\.\.\., 21\)"):
        model.encode({**obs, "poses": obs["poses"][..., :20]})
    bad = obs["poses"].clone()
    bad[0, 0, 3] = float("nan")
    with pytest.raises(ShapeError, match="finite"):
        model.encode({**obs, "poses": bad})
    z = model.encode({k: v[:, 0] for k, v in obs.items()})
    with pytest.raises(ShapeError, match="7 numbers"):
        model.render(z, torch.zeros(2, 1, 6))
    with pytest.raises(ShapeError, match="multi-view observations need 'poses'"):
        model.encode({"views": obs["views"]})


def test_zero_views_and_untileable_images() -> None:
    model = create_world_model("renderer3d:ci", observation_modalities=MULTIVIEW)
    with pytest.raises(ShapeError, match="zero views"):
        model.encode({"views": torch.zeros(2, 0, 16, 16), "poses": torch.zeros(2, 0)})
    with pytest.raises(ConfigError, match="views"):
        create_world_model(
            "renderer3d:ci",
            observation_modalities={
                "views": {"kind": "image", "shape": (0, 16, 16)},
                "poses": {"kind": "vector", "shape": (7,)},
            },
        )
    with pytest.raises(ShapeError, match="ray_batch=50 cannot tile a 16x16 image"):
        create_world_model("renderer3d:ci", ray_batch=50)
    with pytest.raises(ShapeError, match="multiples of 16"):
        create_world_model("renderer3d:ci", obs_shape=(3, 24, 24), ray_batch=144)
    with pytest.raises(ShapeError, match="multiple of 8"):
        create_world_model("renderer3d:gqn", obs_shape=(3, 20, 20), device="meta")
    with pytest.raises(ConfigError, match="far must be > near"):
        get_config("renderer3d:ci", near=2.0, far=1.0)
