"""CEM planner: improvement over iterations, momentum, bounds, policy seeding, warm start."""

from __future__ import annotations

import pytest
import torch

from tests.planning.toys import PointMass
from worldflux.planning import CEMPlanner, PlanningError


def _planner(**kwargs: object) -> CEMPlanner:
    args: dict = dict(action_dim=2, horizon=3, iterations=6, num_samples=256, num_elites=16)
    args.update(kwargs)
    return CEMPlanner(**args)  # type: ignore[arg-type]


def test_cem_improves_over_its_first_iteration_and_reaches_each_goal() -> None:
    torch.manual_seed(0)
    goal = torch.tensor([[0.4, -0.3], [-0.2, 0.45], [0.1, 0.1]])
    result = _planner().plan(PointMass(goal), torch.zeros(3, 2), discount=0.9, eval_mode=True)
    assert result.iteration_value.shape == (6, 3)
    assert torch.all(result.iteration_value[-1] > result.iteration_value[0])
    torch.testing.assert_close(result.action, goal / 0.5, atol=0.1, rtol=0)


def test_momentum_keeps_part_of_the_previous_mean() -> None:
    # one iteration from a zero mean: the refitted mean is (1 - momentum) x the elites' mean
    goal = torch.tensor([[0.45, 0.45]])
    means = {}
    for m in (0.0, 0.5):
        torch.manual_seed(0)
        planner = _planner(iterations=1, momentum_mean=m, momentum_std=m)
        means[m] = planner.plan(PointMass(goal), torch.zeros(1, 2), eval_mode=True).mean
    torch.testing.assert_close(means[0.5], 0.5 * means[0.0])


def test_actions_respect_the_bounds() -> None:
    torch.manual_seed(0)
    goal = torch.tensor([[2.0, -2.0]])  # out of reach: the plan saturates at the bounds
    planner = _planner(action_low=-0.3, action_high=0.5)
    result = planner.plan(PointMass(goal), torch.zeros(1, 2))
    assert result.action.min() >= -0.3 and result.action.max() <= 0.5
    torch.testing.assert_close(result.action, torch.tensor([[0.5, -0.3]]), atol=0.05, rtol=0)


class _PolicyPointMass(PointMass):
    """A point mass whose policy prior always proposes the optimal first action."""

    def plan_policy(self, z: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        return ((self._goal(z) - z) / 0.5).clamp(-1, 1)


def test_policy_sequences_seed_the_samples() -> None:
    torch.manual_seed(0)
    goal = torch.tensor([[0.3, -0.2]])
    planner = _planner(iterations=1, num_samples=8, num_elites=2, num_pi_trajs=2, init_std=2.0)
    result = planner.plan(_PolicyPointMass(goal), torch.zeros(1, 2), discount=0.9)
    # the policy's sequences are perfect, so they are the elites with the best possible value
    assert result.elite_value.max() == pytest.approx(0.0, abs=1e-6)


def test_warm_start_and_argument_checks() -> None:
    planner = _planner(iterations=1, num_samples=16, num_elites=4, min_std=1e-4, init_std=1e-4)
    prev = torch.tensor([[[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]])
    result = planner.plan(PointMass(torch.zeros(1, 2)), torch.zeros(1, 2), prev_mean=prev)
    expected = torch.cat([prev[:, 1:], torch.zeros(1, 1, 2)], 1)
    torch.testing.assert_close(result.mean, expected, atol=1e-3, rtol=0)
    with pytest.raises(PlanningError, match="num_elites"):
        CEMPlanner(action_dim=2, num_samples=8, num_elites=9)
    with pytest.raises(PlanningError, match="momentum"):
        CEMPlanner(action_dim=2, momentum_mean=1.0)
    with pytest.raises(PlanningError, match="objective"):
        CEMPlanner(action_dim=2, objective="reward")
