"""PLDM's planning cost on the shared MPPI: distance to the goal summed over the whole plan.

PLDM (vladisai/PLDM @ cbaf674, ``pldm/planning/planners/mppi_planner.py`` ``RunningCost``)
plans with MPPI whose cost is a *running* cost: at every predicted step, the mean over features
of the squared difference between the predicted embedding and the goal's, summed over the plan.
The shared planners' ``objective: goal`` scores the last predicted latent only
(:mod:`worldflux.planning.objectives`); a plan that reaches the goal early and stays there and
one that arrives at the last step score the same, and the score says nothing about the path.
:class:`RunningGoalMPPI` is the shared :class:`~worldflux.planning.mppi.MPPIPlanner` with PLDM's
running cost; everything else (sampling, elites, warm start) is the shared planner's.

Axis legend: ``H`` horizon, ``N`` flat batch of sequences, ``A`` action size, ``Z`` latent size.
"""

from __future__ import annotations

from torch import Tensor

from worldflux.planning.mppi import MPPIPlanner
from worldflux.planning.protocol import PlanningError


class RunningGoalMPPI(MPPIPlanner):
    """MPPI toward a goal latent with PLDM's running cost (see the module docstring).

    Takes :class:`~worldflux.planning.mppi.MPPIPlanner`'s arguments; ``objective`` must be
    ``"goal"`` (``goal_metric`` is not used: the cost is PLDM's mean squared difference).
    """

    name = "mppi_running_goal"

    def __init__(self, action_dim: int, **kwargs: object) -> None:
        super().__init__(action_dim, **kwargs)  # type: ignore[arg-type]
        if self.objective != "goal":
            raise PlanningError(
                f"RunningGoalMPPI plans toward a goal: objective must be 'goal', got "
                f"{self.objective!r}"
            )

    def score(
        self,
        model: object,
        z: Tensor,
        actions: Tensor,
        discount: Tensor,
        task: Tensor | None,
        goal: Tensor | None,
    ) -> Tensor:
        """Minus ``sum_t mean_Z (z_t - goal)^2`` ``(N,)`` over the plan ``actions (H, N, A)``."""
        if goal is None:
            raise PlanningError("a goal planner needs a goal: pass goal=<goal observation> to act")
        cost = z.new_zeros(z.shape[0])
        for t in range(actions.shape[0]):
            z = model.plan_next(z, actions[t], task)  # type: ignore[attr-defined]
            cost = cost + (z - goal).flatten(1).pow(2).mean(-1)
        return -cost
