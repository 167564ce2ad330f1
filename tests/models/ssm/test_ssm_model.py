"""R2I's model: exact per-component counts, the losses, gradients and bad-input errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from worldflux import create_world_model, get_config
from worldflux.errors import ConfigError, ShapeError
from worldflux.models.ssm.losses import lambda_returns

#: Per-component trainable counts of the reference (Recall2Imagine @ 6e317e7; the world model
#: total 69,505,347 / 9,073,284 is the sum of the first five).
REFERENCE = {
    "ssm:base": {
        "encoder": 1_552_032,
        "dynamics": 34_659_840,
        "decoder": 20_431_779,
        "reward_head": 6_561_023,
        "continue_head": 6_300_673,
        "policy": 11_548_678,
        "value": 11_803_903,
    },
    "ssm:popgym": {
        "encoder": 3_072,
        "dynamics": 5_261_696,
        "decoder": 1_051_652,
        "reward_head": 1_443_583,
        "continue_head": 1_313_281,
        "policy": 1_183_748,
        "value": 1_312_511,
    },
}
WORLD_MODEL = {"ssm:base": 69_505_347, "ssm:popgym": 9_073_284}


@pytest.mark.parametrize("preset", ["ssm:popgym"])  # base: exact total in test_presets
def test_component_counts_match_the_reference(preset: str) -> None:
    model = create_world_model(preset, device="meta")
    counts = {k: sum(p.numel() for p in getattr(model, k).parameters()) for k in REFERENCE[preset]}
    assert counts == REFERENCE[preset]
    wm = sum(counts[k] for k in ("encoder", "dynamics", "decoder", "reward_head", "continue_head"))
    assert wm == WORLD_MODEL[preset]


def _batch(model, b: int = 2, t: int = 6, mid_reset: bool = True) -> dict:
    c, gen = model.config, torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (b, t, *c.obs_shape), dtype=torch.uint8, generator=gen)
    action = F.one_hot(torch.randint(0, c.action_dim, (b, t), generator=gen), c.action_dim)
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    if mid_reset and t > 3:
        first[1, 3] = True
    return {
        "obs": obs,
        "action": action.float(),
        "reward": torch.randn(b, t, generator=gen),
        "first": first,
        "terminal": torch.zeros(b, t, dtype=torch.bool),
    }


def test_observe_scan_equals_stepping_the_agent() -> None:
    torch.manual_seed(0)
    model = create_world_model("ssm:ci").eval()
    # Without resets inside the sequence: at a mid-sequence reset the reference's training path
    # feeds the previous posterior sample (only the action is masked) while its acting path
    # restarts from the initial state; S5 resets themselves are covered in test_ssm_scan.py.
    batch = _batch(model, mid_reset=False)
    states, _ = model.observe(batch["obs"], batch["action"], batch["first"])
    # acting one step at a time (posterior in mode for both) gives the same deter and hidden
    state = None
    for t in range(batch["first"].shape[1]):
        obs = batch["obs"][:, t]
        if state is not None:
            state = {**state, "action": batch["action"][:, t]}
        _, state = model.act(obs, state, first=batch["first"][:, t], eval_mode=True)
        # teacher forcing uses the scan's posterior samples; feed the same into the carry
        state["stoch"] = states["stoch"][:, t]
        torch.testing.assert_close(state["deter"], states["deter"][:, t], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(state["hidden"], states["hidden"][:, t], rtol=1e-4, atol=1e-5)


def test_every_part_gets_gradient_from_its_phase() -> None:
    torch.manual_seed(1)
    model = create_world_model("ssm:ci")
    out = model.loss(_batch(model))
    out.total.backward()
    for name in ("encoder", "dynamics", "decoder", "reward_head", "continue_head", "policy"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name
    # the critic's output layer starts at zero (outscale 0), so only its last layer moves first
    assert model.value.out.linear.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.slow_value.parameters())
    assert set(out.components) >= {"rec_obs", "reward", "cont", "dyn", "rep", "actor", "critic"}


def test_lambda_returns_by_hand() -> None:
    rew = torch.tensor([[1.0, 2.0]])
    cont = torch.tensor([[1.0, 1.0, 0.0]])
    value = torch.tensor([[0.5, 1.5, 3.0]])
    g, lam = 0.9, 0.5
    r1 = 2.0 + 0.0 * g * ((1 - lam) * 3.0 + lam * 3.0)  # terminal: no bootstrap
    r0 = 1.0 + g * ((1 - lam) * 1.5 + lam * r1)
    torch.testing.assert_close(lambda_returns(rew, cont, value, g, lam), torch.tensor([[r0, r1]]))


def test_world_model_loss_terms_by_hand_at_initialisation() -> None:
    torch.manual_seed(2)
    model = create_world_model("ssm:ci")
    batch = _batch(model)
    out = model.phase_loss("model", batch, {})
    # zero-initialised reward head: uniform over 255 bins, NLL = log 255 for any target
    torch.testing.assert_close(out.components["reward"], torch.tensor(255.0).log())
    # free nats: both KL terms are at least 1 nat, scaled by dyn 0.8 and rep 0.2
    assert out.components["dyn"] >= 0.8 - 1e-6 and out.components["rep"] >= 0.2 - 1e-6


def test_s5_parameters_have_their_own_group_without_weight_decay() -> None:
    model = create_world_model("ssm:ci", model_wd=0.5, ssm_lr=1e-3)
    opt = model.configure_optimizers()[0]
    ssm = [g for g in opt.param_groups if g["lr"] == 1e-3]
    assert len(ssm) == 1 and ssm[0]["weight_decay"] == 0.0
    layer = model.dynamics.core.layers[0]
    ids = {id(p) for p in ssm[0]["params"]}
    assert {id(layer.B), id(layer.Lambda_re), id(layer.log_step)} <= ids
    decayed = [g for g in opt.param_groups if g["weight_decay"] == 0.5][0]["params"]
    assert any(p is layer.out.weight for p in decayed)
    assert not any(p is layer.norm.weight for p in decayed)


# ---------------------------------------------------------------------------- bad input
def test_unstable_or_inverted_dt_ranges_are_refused() -> None:
    with pytest.raises(ConfigError, match="dt_min"):
        get_config("ssm:ci", dynamics={"dt_min": 0.2, "dt_max": 0.1})
    with pytest.raises(ConfigError, match=r"dt_min/dt_max must lie in \[1e-6, 1.0\]"):
        get_config("ssm:ci", dynamics={"dt_max": 5.0})
    with pytest.raises(ConfigError, match="discretization"):
        get_config("ssm:ci", dynamics={"discretization": "euler"})


def test_state_size_must_split_into_blocks() -> None:
    with pytest.raises(ConfigError, match=r"ssm_state \(18\) must be divisible by dynamics.blocks"):
        get_config("ssm:ci", ssm_state=18)


def test_unsupported_sequence_lengths_are_refused() -> None:
    model = create_world_model("ssm:ci")
    with pytest.raises(ShapeError, match="T >= 2"):
        model.loss(_batch(model, t=1))
    with pytest.raises(ConfigError, match="batch_length"):
        get_config("ssm:ci", batch_length=1)


def test_image_sizes_must_be_minres_times_a_power_of_two() -> None:
    with pytest.raises(ShapeError, match="minres"):
        create_world_model("ssm:ci", obs_shape=[3, 24, 24])
