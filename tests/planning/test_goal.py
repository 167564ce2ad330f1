"""Goal planning: the Reach environment, goal objectives and TD-MPC2's act(goal=...)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.planning.toys import PointMass, ReachModel
from worldflux import get_config
from worldflux.envs.embedded import Reach
from worldflux.models.tdmpc2.module import TDMPC2
from worldflux.planning import (
    CEMPlanner,
    GoalPlanningModel,
    GradientPlanner,
    MPPIPlanner,
    PlanningError,
)
from worldflux.planning.objectives import latent_distance

GOAL_PLANNERS = {
    "mppi": lambda metric: MPPIPlanner(
        2, horizon=3, iterations=4, num_samples=128, num_elites=16, num_pi_trajs=0,
        objective="goal", goal_metric=metric,
    ),
    "cem": lambda metric: CEMPlanner(
        2, horizon=3, iterations=4, num_samples=128, num_elites=16, objective="goal",
        goal_metric=metric,
    ),
    "gradient": lambda metric: GradientPlanner(
        2, horizon=3, iterations=30, lr=0.2, objective="goal", goal_metric=metric
    ),
}  # fmt: skip


def test_reach_env_returns_its_goal_as_an_observation() -> None:
    for obs in ("vector", "image"):
        env = Reach(obs=obs, seed=0)
        first = env.reset()
        goal = env.goal_observation()
        assert env.spec.extras["goal"] is True
        assert goal["obs"].shape == first["obs"].shape and goal["obs"].dtype == first["obs"].dtype
        assert not np.array_equal(goal["obs"], first["obs"])
    env = Reach(seed=0)
    env.reset()
    np.testing.assert_allclose(env.goal_observation()["obs"], env.goal)


@pytest.mark.parametrize("name", sorted(GOAL_PLANNERS))
@pytest.mark.parametrize("metric", ["l1", "l2", "cosine"])
def test_goal_planner_reaches_the_goal_in_the_reach_env(name: str, metric: str) -> None:
    torch.manual_seed(0)
    env, model = Reach(seed=3, radius=0.15), ReachModel(step=0.2)
    obs = env.reset()
    planner = GOAL_PLANNERS[name](metric)
    goal = model.plan_encode(env.goal_observation()["obs"][None], None)
    start, prev, done = env.distance(), None, False
    for _ in range(30):
        z = model.plan_encode(obs["obs"][None], None)
        result = planner.plan(model, z, prev_mean=prev, goal=goal, eval_mode=True)
        prev = result.mean
        obs, _, done, _ = env.step(result.action[0].numpy())
        if done:
            break
    if metric == "cosine":
        # the cosine distance ignores the length of the latent: it only has to point the same way
        final = torch.as_tensor(obs["obs"])[None]
        assert latent_distance(final, goal, "cosine") < latent_distance(
            torch.as_tensor(Reach(seed=3).reset()["obs"])[None], goal, "cosine"
        )
    else:
        assert done and env.distance() < 0.5 * start


def test_missing_methods_and_goals_are_named() -> None:
    class NoEncoder:
        def plan_next(self, z: torch.Tensor, a: torch.Tensor, t: object) -> torch.Tensor:
            return z

    planner = CEMPlanner(2, num_samples=8, num_elites=2, objective="goal")
    with pytest.raises(PlanningError, match="plan_encode"):
        planner.plan(NoEncoder(), torch.zeros(1, 2), goal=torch.zeros(1, 2))
    with pytest.raises(PlanningError, match="plan_reward, plan_value"):
        MPPIPlanner(2, num_samples=8, num_elites=2, num_pi_trajs=0).plan(
            NoEncoder(), torch.zeros(1, 2)
        )
    with pytest.raises(PlanningError, match="no goal was given"):
        planner.plan(PointMass(), torch.zeros(1, 2))
    with pytest.raises(PlanningError, match="objective 'return'"):
        CEMPlanner(2, num_samples=8, num_elites=2).plan(
            PointMass(torch.zeros(1, 2)), torch.zeros(1, 2), goal=torch.zeros(1, 2)
        )


def test_tdmpc2_acts_toward_an_encoded_goal() -> None:
    torch.manual_seed(0)
    goal_planner = {
        "_target_": "worldflux.planning.cem.CEMPlanner",
        "horizon": 1, "iterations": 4, "num_samples": 64, "num_elites": 8, "num_pi_trajs": 0,
        "init_std": 1.0, "min_std": 0.05, "max_std": 2.0, "momentum_mean": 0.15,
        "momentum_std": 0.15, "objective": "goal", "goal_metric": "l1",
        "action_low": -1.0, "action_high": 1.0,
    }  # fmt: skip
    model = TDMPC2(get_config("tdmpc2:ci", obs_shape=[2], action_dim=2, planner=goal_planner))
    assert isinstance(model, GoalPlanningModel)
    obs, goal = torch.zeros(3, 2), torch.tensor([[0.5, 0.5], [-0.5, 0.2], [0.1, -0.9]])
    action, state = model.act(obs, None, goal=goal, eval_mode=True)
    assert action.shape == (3, 2) and state["prev_mean"].shape == (3, 1, 2)
    # the planned action's predicted latent is closer to the goal's latent than random actions'
    z, gz = model.plan_encode(obs, None), model.plan_encode(goal, None)
    planned = latent_distance(model.next(z, action), gz, "l1")
    random = torch.rand(64, 3, 2) * 2 - 1
    others = torch.stack([latent_distance(model.next(z, a), gz, "l1") for a in random])
    assert torch.all(planned <= others.median(0).values)
    with pytest.raises(PlanningError, match="no goal was given"):
        model.act(obs)
    default = TDMPC2(get_config("tdmpc2:ci", obs_shape=[2], action_dim=2))
    with pytest.raises(PlanningError, match="objective 'return'"):
        default.act(obs, goal=goal)
