"""JEPA (PLDM): reference sizes, loss terms against hand computation, gradients, bad input."""

from __future__ import annotations

import functools

import pytest
import torch

from worldflux import create_world_model
from worldflux.errors import ConfigError, ShapeError
from worldflux.models.jepa import losses
from worldflux.planning.protocol import PlanningError

TINY = {"obs_shape": [2, 16, 16], "latent_dim": 16, "batch_length": 4}


@functools.cache
def _shared():
    torch.manual_seed(0)
    return create_world_model("jepa:ci", **TINY)


def _model(**overrides):
    """The shared tiny model (composing a config costs a second), or one with overrides."""
    if not overrides:
        model = _shared()
        model.zero_grad(set_to_none=True)
        return model
    torch.manual_seed(0)
    return create_world_model("jepa:ci", **{**TINY, **overrides})


def _batch(b: int = 4, t: int = 4, shape=(2, 16, 16)) -> dict:
    gen = torch.Generator().manual_seed(0)
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    return {
        "obs": torch.randint(0, 256, (b, t, *shape), dtype=torch.uint8, generator=gen),
        "action": torch.rand(b, t, 2, generator=gen) * 2 - 1,
        "reward": torch.zeros(b, t),
        "first": first,
        "terminal": torch.zeros(b, t, dtype=torch.bool),
    }


def test_wall_components_match_the_reference_counts() -> None:
    model = create_world_model("jepa:base", device="meta")

    def count(m):
        return sum(p.numel() for p in m.parameters())

    assert count(model.encoder) == 1_426_096
    # the GRU plus the encoder's LayerNorm, which the reference ties into its predictor
    assert count(model.predictor) + count(model.encoder.norm) == 793_600
    assert count(model.idm) == 525_826
    assert model.num_parameters() == 2_218_672 - 1024 + 1024 + 525_826
    assert model.encoder.flat_dim == 2592  # Linear(2592 -> 512) as in the reference


def test_std_and_covariance_terms_by_hand() -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, 2.0], [5.0, 5.0]])
    # per-feature unbiased variances: 4 and 3; hinge at margin 2.5 around sqrt(var + 1e-4)
    expected_std = ((2.5 - (4 + 1e-4) ** 0.5) + (2.5 - (3 + 1e-4) ** 0.5)) / 2
    assert losses.std_hinge(x, 2.5).item() == pytest.approx(expected_std, rel=1e-5)
    # covariance of the two features: ((-2)(-1) + 0 + 2 * 2) / 2 = 3; off-diagonal pair 2 * 9
    assert losses.covariance_penalty(x).item() == pytest.approx(2 * 9 / (2 * 1), rel=1e-6)


def test_loss_terms_match_a_direct_computation() -> None:
    model = _model()
    batch = _batch()
    out = model.loss(batch)
    c = model.config
    enc = model.encode(batch["obs"])
    z, preds = enc[:, 0], [enc[:, 0]]
    for t in range(1, 4):
        z = model.transition(z, batch["action"][:, t])
        preds.append(z)
    pred = torch.stack(preds, 1)
    sim = (enc[:, 1:] - pred[:, 1:]).pow(2).mean()
    sim_t = (enc[:, 1:] - enc[:, :-1]).pow(2).mean()
    idm = (model.idm(enc[:, :-1], enc[:, 1:]) - batch["action"][:, 1:]).pow(2).mean()
    assert out.components["sim"].item() == pytest.approx(c.sim_coeff * sim.item(), rel=1e-5)
    assert out.components["sim_t"].item() == pytest.approx(c.sim_coeff_t * sim_t.item(), rel=1e-5)
    assert out.components["idm"].item() == pytest.approx(c.idm_coeff * idm.item(), rel=1e-5)
    total = sum(v for v in out.components.values())
    assert out.total.item() == pytest.approx(total.item(), rel=1e-6)
    assert set(out.components) == {"sim", "std", "cov", "std_t", "sim_t", "idm"}


def test_an_episode_start_inside_the_window_restarts_the_rollout() -> None:
    model = _model()
    batch = _batch()
    batch["first"][:, 2] = True
    out = model.loss(batch)
    enc = model.encode(batch["obs"])
    step1 = model.transition(enc[:, 0], batch["action"][:, 1])
    step3 = model.transition(enc[:, 2], batch["action"][:, 3])
    sim = ((enc[:, 1] - step1).pow(2).sum() + (enc[:, 3] - step3).pow(2).sum()) / (2 * 4 * 16)
    assert out.components["sim"].item() == pytest.approx(sim.item(), rel=1e-5)


def test_gradients_reach_every_part() -> None:
    model = _model()
    model.loss(_batch()).total.backward()
    for name in ("encoder", "predictor", "idm"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), name


def test_idm_coeff_zero_builds_no_head() -> None:
    model = _model(idm_coeff=0.0)
    assert model.idm is None and "idm" not in model.loss(_batch()).components


def test_rollout_and_score_goal() -> None:
    model = _model()
    obs = _batch()["obs"][:, 0]
    z = model.encode(obs)
    roll = model.rollout(z, torch.zeros(4, 5, 2))
    assert roll.states.shape == (4, 5, 16)
    score = model.score_goal(z, obs)
    assert score.shape == (4,) and torch.allclose(score, torch.zeros(4), atol=1e-3)


def test_act_plans_toward_a_goal() -> None:
    model = _model()
    obs = _batch()["obs"][:, 0]
    goal = _batch()["obs"][:, 1]
    action, state = model.act(obs, None, goal=goal, eval_mode=True)
    assert action.shape == (4, 2) and action.abs().max() <= 1.0
    assert state["plan_mean"].shape == (4, model.planner.horizon, 2)
    action, _ = model.act(obs, state, first=torch.zeros(4, dtype=torch.bool), goal=goal)
    assert torch.isfinite(action).all()


# ---------------------------------------------------------------------------- bad input
def test_missing_goal_is_a_clear_error() -> None:
    model = _model()
    with pytest.raises(PlanningError, match="goal"):
        model.act(_batch()["obs"][:, 0])


def test_goal_of_the_wrong_shape_is_a_clear_error() -> None:
    model = _model()
    obs = _batch()["obs"][:, 0]
    with pytest.raises(ShapeError, match=r"goal must have shape .*obs_shape \[2, 16, 16\]"):
        model.act(obs, goal=torch.zeros(4, 3, 16, 16))
    with pytest.raises(ShapeError, match="one goal per observation"):
        model.act(obs, goal=obs[:2])


def test_too_short_sequences_are_a_clear_error() -> None:
    model = _model()
    with pytest.raises(ShapeError, match="T >= 2"):
        model.loss(_batch(t=1))
    with pytest.raises(ConfigError, match="batch_length"):
        _model(batch_length=1)


def test_wrong_observation_shape_is_a_clear_error() -> None:
    model = _model()
    with pytest.raises(ShapeError, match="obs must have shape"):
        model.loss(_batch(shape=(3, 16, 16)))


def test_a_return_planner_is_refused() -> None:
    with pytest.raises(ConfigError, match="planner.objective must be 'goal'"):
        _model(**{"planner.objective": "return"})


def test_discrete_actions_are_refused() -> None:
    with pytest.raises(ConfigError, match="continuous"):
        create_world_model("jepa:ci", action_spec={"kind": "discrete", "dim": 3})


def test_running_goal_mppi_sums_pldms_cost_over_the_plan() -> None:
    from worldflux.models.jepa.planning import RunningGoalMPPI

    m = _model(planner={"_target_": "worldflux.models.jepa.planning.RunningGoalMPPI",
                        "horizon": 3, "num_samples": 16, "num_elites": 4, "iterations": 2,
                        "num_pi_trajs": 0, "objective": "goal"})  # fmt: skip
    assert isinstance(m.planner, RunningGoalMPPI)
    z, goal = torch.randn(5, m.config.latent_dim), torch.randn(5, m.config.latent_dim)
    actions = torch.rand(3, 5, 2) * 2 - 1
    with torch.no_grad():
        got = m.planner.score(m, z, actions, torch.ones(5), None, goal)
        want, zt = torch.zeros(5), z
        for t in range(3):
            zt = m.transition(zt, actions[t])
            want -= ((zt - goal) ** 2).mean(-1)
    torch.testing.assert_close(got, want)
    obs = torch.randint(0, 256, (2, *m.obs_shape), dtype=torch.uint8)
    action, state = m.act(obs, goal=obs)
    assert action.shape == (2, 2) and state["plan_mean"].shape == (2, 3, 2)
    with pytest.raises(PlanningError, match="objective must be 'goal'"):
        RunningGoalMPPI(2, objective="return")
