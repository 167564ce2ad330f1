"""Planners that act by searching a learned model's latent space.

Planners are components: each file of the ``planner`` config group (``conf/planner/``) builds one
of :class:`MPPIPlanner`, :class:`CEMPlanner` and :class:`GradientPlanner`, with the action size as
a call-site argument. Any model that implements the methods of
:mod:`worldflux.planning.protocol` can be planned with, toward the predicted return or toward an
encoded goal observation (:mod:`worldflux.planning.objectives`). See ``docs/planning.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worldflux.planning.base import Planner, PlanResult
from worldflux.planning.cem import CEMPlanner
from worldflux.planning.gradient import GradientPlanner
from worldflux.planning.mppi import MPPIPlanner
from worldflux.planning.protocol import (
    GoalPlanningModel,
    LatentPlanningModel,
    PlanningError,
    has_policy,
    has_termination,
    require,
)


def build_planner(node: Mapping[str, Any], action_dim: int) -> Planner:
    """Build the planner a config node (one file of the ``planner`` group) describes.

    Args:
        node: ``{"_target_": ..., <constructor arguments>}``.
        action_dim: the model's action size (a call-site argument).

    Raises:
        PlanningError: the node builds something that is not a :class:`Planner`.
    """
    from worldflux.core.instantiate import instantiate

    if not isinstance(node, Mapping) or "_target_" not in node:
        raise PlanningError(f"a planner config needs a _target_, got {node!r}")
    planner = instantiate(dict(node), action_dim=action_dim)
    if not isinstance(planner, Planner):
        raise PlanningError(
            f"planner _target_ {node['_target_']!r} built a {type(planner).__name__}, "
            f"not a worldflux.planning.Planner"
        )
    return planner


__all__ = [
    "CEMPlanner",
    "GoalPlanningModel",
    "GradientPlanner",
    "LatentPlanningModel",
    "MPPIPlanner",
    "PlanResult",
    "Planner",
    "PlanningError",
    "build_planner",
    "has_policy",
    "has_termination",
    "require",
]
