"""Planners that act by searching a learned model's latent space.

:class:`MPPIPlanner` plans with any model that implements
:class:`~worldflux.planning.protocol.LatentPlanningModel` (latent dynamics, reward and value, and
optionally a policy prior and termination predictions).
"""

from worldflux.planning.mppi import MPPIPlanner, PlanResult
from worldflux.planning.protocol import LatentPlanningModel, has_policy, has_termination

__all__ = ["MPPIPlanner", "PlanResult", "LatentPlanningModel", "has_policy", "has_termination"]
