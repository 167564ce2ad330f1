"""Gradient planner: Adam on the actions through a differentiable model."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from tests.planning.toys import PointMass
from worldflux.planning import GradientPlanner, PlanningError


def test_objective_improves_monotonically_on_a_convex_toy() -> None:
    torch.manual_seed(0)
    goal = torch.tensor([[0.4, -0.3], [-0.2, 0.45]])
    planner = GradientPlanner(action_dim=2, horizon=3, iterations=100, num_samples=1, lr=0.05)
    result = planner.plan(PointMass(goal), torch.zeros(2, 2), discount=0.9, eval_mode=True)
    values = result.iteration_value  # (iterations + 1, B): best value before each step, final
    steps = values[1:] - values[:-1]
    # Adam on a convex quadratic: the first steps all improve; later ones may overshoot (Adam's
    # momentum) by at most 2% of the initial gap, and the end is the optimum (value 0)
    assert torch.all(steps[:5] > 0)
    assert torch.all(steps >= -0.02 * (values[-1] - values[0]))
    assert torch.all(values[-1] > -1e-3)
    assert torch.all(values[-1] > values[0])
    torch.testing.assert_close(result.action, goal / 0.5, atol=0.05, rtol=0)


def test_actions_are_clamped_to_the_bounds() -> None:
    goal = torch.tensor([[3.0, -3.0]])
    planner = GradientPlanner(
        action_dim=2, horizon=2, iterations=30, lr=0.2, action_low=-0.5, action_high=0.25
    )
    result = planner.plan(PointMass(goal), torch.zeros(1, 2), eval_mode=True)
    assert result.mean.min() >= -0.5 and result.mean.max() <= 0.25
    torch.testing.assert_close(result.action, torch.tensor([[0.25, -0.5]]))


def test_the_model_parameters_get_no_gradient() -> None:
    class Linear(PointMass):
        def __init__(self, goal: Tensor) -> None:
            super().__init__(goal)
            self.net = torch.nn.Linear(2, 2)

        def plan_next(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
            return self.net(z) + 0.5 * action

    model = Linear(torch.zeros(1, 2))
    GradientPlanner(action_dim=2, iterations=3).plan(model, torch.zeros(1, 2))
    assert all(p.grad is None for p in model.net.parameters())


def test_a_model_that_is_not_differentiable_is_refused() -> None:
    class Frozen(PointMass):
        def plan_next(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
            return z + (action > 0).float()

        def plan_reward(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
            return -(z + (action > 0).float()).pow(2).sum(-1)

    with pytest.raises(PlanningError, match="differentiable"):
        GradientPlanner(action_dim=2).plan(Frozen(torch.zeros(1, 2)), torch.zeros(1, 2))
