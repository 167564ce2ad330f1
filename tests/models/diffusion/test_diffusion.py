"""Unit tests of the diffusion family (DIAMOND): EDM scalings, samplers, returns, episode padding,
gradient routing, weight-decay groups, bad inputs and released-weight loading."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from worldflux import create_world_model
from worldflux.errors import ConfigError, ModelFileError, ShapeError
from worldflux.models.diffusion import frames as fr
from worldflux.models.diffusion.agent import lambda_returns
from worldflux.models.diffusion.denoiser import build_sigmas
from worldflux.models.diffusion.weights import from_official, load_official

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_world_model("diffusion:ci", action_dim=3)


def _batch(b: int, t: int, a: int = 3, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    return {
        "obs": torch.randint(0, 256, (b, t, 3, 16, 16), dtype=torch.uint8, generator=g),
        "action": F.one_hot(torch.randint(0, a, (b, t), generator=g), a).float(),
        "reward": torch.randint(-1, 2, (b, t), generator=g).float(),
        "first": first,
        "terminal": torch.zeros(b, t, dtype=torch.bool),
    }


def test_edm_conditioners_match_hand_computed_values(model) -> None:
    sigma = torch.tensor([0.4])
    cs = model.denoiser.conditioners(sigma)
    s = math.sqrt(0.4**2 + 0.3**2)  # offset noise 0.3 joins the noise level
    assert cs.c_in.item() == pytest.approx(1 / math.sqrt(s**2 + 0.25))
    assert cs.c_skip.item() == pytest.approx(0.25 / (s**2 + 0.25))
    assert cs.c_out.item() == pytest.approx(s * math.sqrt(0.25 / (s**2 + 0.25)))
    assert cs.c_noise.item() == pytest.approx(math.log(s) / 4)


def test_karras_schedule_runs_from_sigma_max_to_sigma_min_then_zero() -> None:
    s = build_sigmas(3, 2e-3, 5.0, 7.0)
    assert s.shape == (4,) and s[-1] == 0
    assert s[0].item() == pytest.approx(5.0) and s[2].item() == pytest.approx(2e-3, rel=1e-4)
    mid = ((5.0 ** (1 / 7) + 2e-3 ** (1 / 7)) / 2) ** 7
    assert s[1].item() == pytest.approx(mid, rel=1e-5)


def test_lambda_returns_by_hand() -> None:
    rew = torch.tensor([[2.0, -0.5]])  # clipped to their sign: 1, -1
    end, trunc = torch.zeros(1, 2), torch.tensor([[0.0, 1.0]])
    boot = torch.tensor([[10.0, 4.0]])
    g, lam = 0.9, 0.5
    last = -1 + g * 4.0  # truncated: full bootstrap
    first = 1 + g * (1 - lam) * 10.0 + g * lam * last
    out = lambda_returns(rew, end, trunc, boot, g, lam)
    assert torch.allclose(out, torch.tensor([[first, last]]))
    end = torch.tensor([[1.0, 0.0]])  # an end stops the return at its step
    assert lambda_returns(rew, end, trunc, boot, g, lam)[0, 0].item() == pytest.approx(1.0)


def test_window_pads_frames_of_a_previous_episode() -> None:
    x = torch.ones(1, 6, 3, 2, 2)
    act = torch.arange(1, 7)[None] % 3
    first = torch.tensor([[True, False, False, True, False, False]])
    episode = fr.episode_ids({"first": first}, (1, 6), x.device)
    frames, taken = fr.window(x, act, episode, 1, 4)  # frames 1..4 predict frame 5
    assert frames[0, :2].abs().sum() == 0 and frames[0, 2:].min() == 1  # 1, 2 precede the start
    assert taken[0, :2].tolist() == [0, 0] and taken[0, 2:].tolist() == act[0, 4:6].tolist()


def test_each_phase_trains_only_its_part(model) -> None:
    lengths = {"denoiser": 6, "rew_end_model": 8, "actor_critic": 4}
    for phase, t in lengths.items():
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        model.phase_loss(phase, _batch(1, t), {}).total.backward()
        for part in lengths:
            grads = [p.grad for p in getattr(model, part).parameters()]
            touched = any(g is not None and g.abs().sum() > 0 for g in grads)
            assert touched == (part == phase), (phase, part)
    model.zero_grad(set_to_none=True)


def test_embeddings_get_no_weight_decay(model) -> None:
    opts = model.configure_optimizers()
    decayed = {id(p) for g in opts[0].param_groups if g["weight_decay"] > 0 for p in g["params"]}
    emb = model.denoiser.inner_model.act_emb[0].weight
    assert id(emb) not in decayed and id(model.denoiser.inner_model.conv_in.weight) in decayed
    assert all(g["weight_decay"] == 0 for g in opts[2].param_groups)


def test_sample_generates_frames_and_euler_differs_from_heun(model) -> None:
    ctx = torch.randint(0, 256, (2, 3, 3, 16, 16), dtype=torch.uint8)
    acts = F.one_hot(torch.tensor([[0, 2], [1, 1]]), 3).float()
    out = model.sample(ctx, num_steps=2, generator=torch.Generator().manual_seed(0), actions=acts)
    assert out.obs.shape == (2, 2, 3, 16, 16) and out.num_steps == 2
    assert out.obs.min() >= 0 and out.obs.max() <= 1
    model.config.sampler = "heun"
    try:
        heun = model.sample(
            ctx, num_steps=2, generator=torch.Generator().manual_seed(0), actions=acts
        )
    finally:
        model.config.sampler = "euler"
    assert not torch.equal(heun.obs, out.obs)


def test_observe_rollout_decode(model) -> None:
    batch = _batch(2, 5)
    states, last = model.observe(batch["obs"], batch["action"], batch["first"])
    assert states["frames"].shape == (2, 5, 4, 3, 16, 16)
    assert torch.allclose(model.decode(states)["obs"], batch["obs"].float() / 255, atol=1e-6)
    out = model.rollout(last, batch["action"][:, :3])
    assert model.decode(out)["obs"].shape == (2, 3, 3, 16, 16)
    assert out.rewards.shape == out.continues.shape == (2, 3)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: m.sample(torch.zeros(2, 3, 8, 8), num_steps=3), ShapeError, "16, 16"),
        (
            lambda m: m.sample(torch.zeros(2, 5, 3, 16, 16), num_steps=3),
            ShapeError,
            "1 <= T <= num_steps_conditioning=4",
        ),
        (lambda m: m.sample(torch.zeros(2, 3, 16, 16), num_steps=0), ConfigError, "num_steps"),
        (lambda m: m.sample(torch.zeros(2, 3, 16, 16), num_steps=-2), ConfigError, ">= 1"),
        (lambda m: m.phase_loss("denoiser", _batch(2, 4), {}), ShapeError, ">= 5 frames"),
        (
            lambda m: m.act(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)),
            ShapeError,
            "(C, S, S) = (3, 16, 16)",
        ),
    ],
)
def test_bad_inputs_are_named(model, call, error, match) -> None:
    with pytest.raises(error, match=match.replace("(", r"\(").replace(")", r"\)")):
        call(model)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"sigma_min": 5.0, "sigma_max": 2.0}, "sigma_min must be < sigma_max"),
        ({"sigma_min": 0.0}, "sigma_min"),
        ({"train_sigma_min": 30.0}, "train_sigma_min must be < train_sigma_max"),
        ({"num_steps_denoising": 0}, "num_steps_denoising"),
        ({"sampler": "ddim"}, "sampler must be one of"),
        ({"batch_length": 4}, "batch_length must be >= num_steps_conditioning"),
        ({"obs_shape": [3, 16, 8]}, "square"),
        ({"action_kind": "continuous"}, "discrete"),
    ],
)
def test_bad_configs_are_named(overrides: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        create_world_model("diffusion:ci", device="meta", **overrides)


def test_our_state_dict_has_the_reference_layout() -> None:
    ref = json.loads((HERE / "reference_state_dict_shapes.json").read_text())["shapes"]
    ours = create_world_model("diffusion:base", device="meta").state_dict()
    assert {k: list(v.shape) for k, v in ours.items()} == ref


def test_released_agent_layout_loads(model, tmp_path: Path) -> None:
    # the reference saves Agent.state_dict(); a compiled module adds _orig_mod. to the keys
    state = {}
    for k, v in model.state_dict().items():
        part, rest = k.split(".", 1)
        state[f"{part}._orig_mod.{rest}" if part == "denoiser" else k] = v + 0.01
    torch.save(state, tmp_path / "Game.pt")
    loaded = from_official(tmp_path / "Game.pt", "diffusion:ci")
    assert loaded.config.action_dim == 3
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, model.state_dict()[k] + 0.01), k
    del state["rew_end_model.head.0.weight"]
    torch.save(state, tmp_path / "Broken.pt")
    with pytest.raises(ModelFileError, match=r"missing \(1\): rew_end_model.head.0.weight"):
        load_official(create_world_model("diffusion:ci", action_dim=3), tmp_path / "Broken.pt")
    with pytest.raises(
        ModelFileError, match="the file is for 3 actions, the model has action_dim=4"
    ):
        load_official(create_world_model("diffusion:ci"), tmp_path / "Game.pt")


def test_open_loop_video_frames(model) -> None:
    from worldflux.training.video import open_loop_frames

    batch = _batch(2, 7)
    frames = open_loop_frames(model, batch, context=5)  # the training stack's video hook
    assert frames.shape == (2, 2 * 16, 3 * 16, 3)


@pytest.mark.parametrize(("sampler", "steps", "calls"), [("euler", 3, 3), ("heun", 3, 5)])
def test_actor_critic_imagines_with_the_configured_sampler(
    model, monkeypatch, sampler: str, steps: int, calls: int
) -> None:
    # model.sampler / model.num_steps_denoising set the imagination's sampler (docs/diffusion.md)
    from worldflux.models.diffusion import module

    monkeypatch.setattr(model.config, "sampler", sampler)
    monkeypatch.setattr(model.config, "num_steps_denoising", steps)
    monkeypatch.setattr(model.config, "horizon", 2)
    seen, count = [], []
    sample_next, denoise = module.sample_next, model.denoiser.denoise

    def spy(denoiser, obs, act, s, generator=None):
        seen.append((s.order, s.num_steps))
        return sample_next(denoiser, obs, act, s, generator)

    monkeypatch.setattr(module, "sample_next", spy)
    monkeypatch.setattr(model.denoiser, "denoise", lambda *a: count.append(1) or denoise(*a))
    torch.manual_seed(0)
    model.phase_loss("actor_critic", _batch(1, 4), {})
    assert seen == [(1 + (sampler == "heun"), steps)] * 2
    assert len(count) == 2 * calls  # Heun: two evaluations a step, Euler's at the last


def test_a_reward_sequence_shorter_than_imagination_warns() -> None:
    """Raising the horizon alone left the reward/termination model training on 7 transitions and
    reading 11 in imagination (docs/learning.md, diffusion item 12): the config says so."""
    from worldflux import get_config

    with pytest.warns(UserWarning, match=r"model\.rew_end_batch_length=12"):
        get_config("diffusion:ci", horizon=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_config("diffusion:ci", horizon=8, rew_end_batch_length=12)
        get_config("diffusion:base")
