"""IRIS (family ``token``): counts, losses against hand-computed values, cache, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from worldflux import create_world_model
from worldflux.models.token.actor_critic import lambda_returns
from worldflux.models.token.losses import world_model_targets

#: Trainable parameters of the reference (eloialonso/iris @ 24326aa) built on CPU, per part.
REFERENCE = {
    4: {"tokenizer": 4_027_523, "world_model": 8_447_493, "actor_critic": 3_217_957},
    18: {"tokenizer": 4_027_523, "world_model": 8_451_077, "actor_critic": 3_225_139},
}


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_world_model("token:ci")


@pytest.mark.parametrize("actions", [4, 18])
def test_base_matches_the_reference_per_part(actions: int) -> None:
    m = create_world_model("token:base", action_dim=actions, device="meta")
    assert m.parameter_breakdown() == REFERENCE[actions]


def test_lambda_returns_by_hand() -> None:
    r = torch.tensor([[1.0, 0.0, 2.0]])
    v = torch.tensor([[0.5, 1.0, 3.0]])
    e = torch.tensor([[False, True, False]])
    g, lam = 0.9, 0.5
    g2 = 3.0
    g1 = 0.0 + 0.0  # the episode ends at step 1: no bootstrap
    g0 = 1.0 + g * ((1 - lam) * 1.0 + lam * g1)
    out = lambda_returns(r, v, e, g, lam)
    assert torch.allclose(out, torch.tensor([[g0, g1, g2]]))


def _batch(m: torch.nn.Module, b: int = 2, t: int = 3) -> dict:
    gen = torch.Generator().manual_seed(0)
    c = m.config
    a = torch.randint(0, c.action_dim, (b, t), generator=gen)
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    return {
        "obs": torch.randint(0, 256, (b, t, *c.obs_shape), dtype=torch.uint8, generator=gen),
        "action": F.one_hot(a, c.action_dim).float(),
        "reward": torch.tensor([[0.0, 2.0, -0.5], [0.0, 0.0, 1.0]]),
        "first": first,
        "terminal": torch.tensor([[False, True, False], [False, False, False]]),
    }


def test_world_model_targets_pair_each_frame_with_the_action_taken(model) -> None:
    batch = _batch(model)
    x = model.frames(batch["obs"], 2)
    t = world_model_targets(model, batch, x)
    k = model.config.tokens_per_frame
    tokens = t.tokens.view(2, 2, k + 1)
    assert torch.equal(tokens[..., -1], batch["action"][:, 1:].argmax(-1))
    assert torch.equal(tokens[..., :k], model.encode(batch["obs"][:, :2]))
    # sample 0 ends at replay step 1, so its IRIS step 1 is padding; rewards are sign + 1
    assert t.valid.tolist() == [True, False, True, True]
    assert t.reward_labels.tolist() == [2, -1, 1, 2]
    assert t.end_labels.tolist() == [1, -1, 0, 0]
    labels = t.obs_labels.view(2, -1)
    assert (labels[0, k - 1 :] == -1).all() and (labels[1] >= 0).all()


def test_world_model_loss_equals_cross_entropy_on_valid_labels(model) -> None:
    model.eval()
    batch = _batch(model)
    out = model.world_model_loss(batch)
    t = world_model_targets(model, batch, model.frames(batch["obs"], 2))
    logits = model.world_model(t.tokens)
    keep = t.valid
    want = F.cross_entropy(logits.reward.flatten(0, 1)[keep], t.reward_labels[keep])
    assert torch.allclose(out.components["reward"], want)
    obs_keep = t.obs_labels >= 0
    want = F.cross_entropy(logits.obs[:, :-1].flatten(0, 1)[obs_keep], t.obs_labels[obs_keep])
    assert torch.allclose(out.components["obs"], want)
    model.train()


def test_cached_steps_equal_the_full_sequence(model) -> None:
    wm = model.world_model.eval()
    n = wm.max_tokens
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, model.config.action_dim, (2, n), generator=gen)
    full = wm(tokens)
    cache = wm.new_cache(2)
    parts = [wm(tokens[:, i : i + 3], cache) for i in range(0, n, 3)]
    assert torch.allclose(torch.cat([p.features for p in parts], 1), full.features, atol=1e-5)
    assert torch.allclose(torch.cat([p.obs for p in parts], 1), full.obs, atol=1e-5)
    assert torch.allclose(torch.cat([p.reward for p in parts], 1), full.reward, atol=1e-5)
    wm.train()


def test_tokenizer_loss_terms_by_hand(model) -> None:
    batch = _batch(model)
    out = model.tokenizer_loss(batch)
    x = model.frames(batch["obs"], 2).flatten(0, 1)
    q = model.tokenizer.encode(x)
    rec = model.tokenizer.decode(q.z_q)
    assert torch.allclose(out.components["reconstruction"], (x - rec).abs().mean(), atol=1e-6)
    assert torch.allclose(out.components["commitment"], 2 * (q.z - q.z_q).pow(2).mean(), atol=1e-6)
    assert "perceptual" not in out.components  # the ci preset has no LPIPS term


@pytest.mark.parametrize(
    "phase, part",
    [("tokenizer", "tokenizer"), ("world_model", "world_model"), ("actor_critic", "actor_critic")],
)
def test_each_phase_trains_its_own_part(model, phase: str, part: str) -> None:
    model.zero_grad(set_to_none=True)
    batch = _batch(model)
    torch.manual_seed(0)
    model.phase_loss(phase, batch, {}).total.backward()
    for name in model.component_slots:
        grads = [p.grad for p in getattr(model, name).parameters()]
        reached = any(g is not None and g.abs().sum() > 0 for g in grads)
        assert reached == (name == part), (phase, name)
    model.zero_grad(set_to_none=True)


def test_world_model_phase_decays_linear_weights_only(model) -> None:
    phase = next(p for p in model.schedule.phases if p.name == "world_model")
    opt = model.build_phase_optimizer(phase)
    decay = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    linear = {id(m.weight) for m in model.world_model.modules() if isinstance(m, torch.nn.Linear)}
    assert decay == linear
