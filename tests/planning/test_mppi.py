"""MPPI planner on toy latent models with known optimal actions."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from worldflux import get_config
from worldflux.models.tdmpc2.module import TDMPC2
from worldflux.planning import LatentPlanningModel, MPPIPlanner


class PointMass:
    """``z`` is a position; an action moves it; reward is minus the distance to a goal."""

    def __init__(self, goal: Tensor) -> None:
        self.goal = goal  # (B, A)

    def _goal(self, z: Tensor) -> Tensor:
        return self.goal.repeat_interleave(z.shape[0] // self.goal.shape[0], dim=0)

    def plan_next(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        return z + 0.5 * action

    def plan_reward(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        return -(z + 0.5 * action - self._goal(z)).pow(2).sum(-1)

    def plan_value(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        return torch.zeros(z.shape[0])


class Constant:
    """Reward 1, value 10, optional certain termination after the first step."""

    def __init__(self, terminate: bool) -> None:
        self.terminate = terminate

    def plan_next(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        return z

    def plan_reward(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        return torch.ones(z.shape[0])

    def plan_value(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        return torch.full((z.shape[0],), 10.0)

    def plan_termination(self, z: Tensor, task: Tensor | None) -> Tensor:
        return torch.full((z.shape[0],), 1.0 if self.terminate else 0.0)


def test_toy_models_satisfy_the_protocol() -> None:
    assert isinstance(PointMass(torch.zeros(1, 2)), LatentPlanningModel)
    assert isinstance(TDMPC2(get_config("tdmpc2:ci")), LatentPlanningModel)


@pytest.mark.parametrize(
    ("terminate", "expected"), [(False, 1 + 0.5 + 0.25 + 0.125 * 10), (True, 1.0)]
)
def test_value_estimate_discounts_and_stops_at_termination(
    terminate: bool, expected: float
) -> None:
    planner = MPPIPlanner(action_dim=2, horizon=3)
    value = planner.estimate_value(
        Constant(terminate), torch.zeros(4, 3), torch.zeros(3, 4, 2), torch.full((4,), 0.5), None
    )
    torch.testing.assert_close(value, torch.full((4,), expected))


def test_plans_are_bounded_improve_and_reach_each_goal() -> None:
    torch.manual_seed(0)
    goal = torch.tensor([[0.4, -0.3], [-0.2, 0.45], [0.1, 0.1]])
    planner = MPPIPlanner(
        action_dim=2, horizon=3, iterations=6, num_samples=512, num_elites=64, num_pi_trajs=24
    )
    result = planner.plan(PointMass(goal), torch.zeros(3, 2), discount=0.9, eval_mode=True)
    assert result.action.shape == (3, 2) and result.action.abs().max() <= 1
    assert torch.all(result.iteration_value[-1] > result.iteration_value[0])
    # the first step that lands on the goal is action = goal / 0.5
    torch.testing.assert_close(result.action, (goal / 0.5).clamp(-1, 1), atol=0.15, rtol=0)
    assert result.std.min() >= planner.min_std - 1e-6


def test_warm_start_shifts_the_previous_plan() -> None:
    planner = MPPIPlanner(
        action_dim=2,
        horizon=3,
        iterations=1,
        num_samples=16,
        num_elites=4,
        num_pi_trajs=0,
        min_std=1e-4,
        max_std=1e-4,
    )
    model = PointMass(torch.zeros(2, 2))
    prev = torch.tensor([[[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]]).repeat(2, 1, 1)
    result = planner.plan(model, torch.zeros(2, 2), prev_mean=prev, eval_mode=True)
    expected = torch.cat([prev[:, 1:], torch.zeros(2, 1, 2)], 1)
    torch.testing.assert_close(result.mean, expected, atol=1e-3, rtol=0)
    torch.testing.assert_close(result.action, prev[:, 1], atol=1e-3, rtol=0)
    cold = planner.plan(model, torch.zeros(2, 2), prev_mean=None, eval_mode=True)
    torch.testing.assert_close(cold.mean, torch.zeros(2, 3, 2), atol=1e-3, rtol=0)


def test_action_mask_zeroes_padded_dimensions() -> None:
    planner = MPPIPlanner(
        action_dim=3, horizon=2, iterations=2, num_samples=32, num_elites=4, num_pi_trajs=0
    )
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    model = PointMass(torch.full((1, 3), 0.3))
    result = planner.plan(model, torch.zeros(1, 3), action_mask=mask)
    assert result.action[0, 2] == 0 and torch.all(result.mean[..., 2] == 0)


def test_tdmpc2_act_uses_the_warm_start() -> None:
    model = TDMPC2(get_config("tdmpc2:ci", min_std=1e-4, max_std=1e-4, num_pi_trajs=0))
    prev = torch.full((2, model.config.horizon, 6), 0.5)
    _, state = model.act(torch.randn(2, 24), {"prev_mean": prev}, first=torch.tensor([0, 1]).bool())
    torch.testing.assert_close(state["prev_mean"][0, :-1], prev[0, 1:], atol=1e-3, rtol=0)
    torch.testing.assert_close(state["prev_mean"][1], torch.zeros(3, 6), atol=1e-3, rtol=0)


def test_prev_mean_shape_is_checked() -> None:
    planner = MPPIPlanner(action_dim=2, horizon=3, num_samples=16, num_elites=4, num_pi_trajs=0)
    with pytest.raises(ValueError, match=r"\(B, H, A\)"):
        planner.plan(
            PointMass(torch.zeros(1, 2)), torch.zeros(1, 2), prev_mean=torch.zeros(1, 2, 2)
        )


def test_tdmpc2_mppi_plan_is_pinned() -> None:
    """A fixed-seed TD-MPC2 plan, recorded before MPPI became a planner component: the
    refactor must keep MPPI numerically exact (tdmpc2:ci, two act calls, second warm-started)."""
    torch.manual_seed(0)
    model = TDMPC2(get_config("tdmpc2:ci"))
    obs = torch.randn(2, 24)
    torch.manual_seed(1)
    first, state = model.act(obs)
    second, state = model.act(obs, state, eval_mode=True)
    torch.testing.assert_close(
        first,
        torch.tensor(
            [
                [-0.89743781, 0.44937161, -0.09089245, 0.78832066, -0.85883152, 1.0],
                [-0.99687713, 0.44486883, -0.63775367, 0.50676060, -0.86190146, 0.75437444],
            ]
        ),
        atol=1e-6,
        rtol=0,
    )
    torch.testing.assert_close(
        second,
        torch.tensor(
            [
                [1.0, -1.0, -0.80656374, 1.0, -0.53285122, 1.0],
                [0.15146762, 0.11666960, 0.80181634, -0.14096549, 0.06369892, 0.91570842],
            ]
        ),
        atol=1e-6,
        rtol=0,
    )
    torch.testing.assert_close(
        state["prev_mean"][0, 0],
        torch.tensor([0.54698211, -0.08106849, -0.85177565, 0.71920216, -0.19997284, 0.38347983]),
        atol=1e-6,
        rtol=0,
    )
