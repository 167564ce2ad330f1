"""What a model must offer to be planned with: latent dynamics, reward and value.

Any family whose latent state ``z`` can be advanced by an action and scored by a reward and a
value prediction can be planned with :class:`worldflux.planning.MPPIPlanner`. The planner calls
these methods on flat batches of ``N = envs x samples`` latent states; ``task`` is ``None`` or a
``(N,)`` long tensor that the model may use (multitask models) or ignore.

Axis legend: ``N`` flat batch of latent states, ``Z`` latent size, ``A`` action size.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class LatentPlanningModel(Protocol):
    """The latent-space interface MPPI needs.

    Required: :meth:`plan_next`, :meth:`plan_reward`, :meth:`plan_value`. Optional (detected with
    ``hasattr`` and a non-``None`` return): ``plan_policy(z, task) -> (N, A)`` sampled actions of a
    policy prior, used to seed ``num_pi_trajs`` trajectories and to pick the bootstrap action; and
    ``plan_termination(z, task) -> (N,)`` termination probabilities of episodic models.
    """

    def plan_next(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        """Next latent state ``(N, Z)`` from ``z (N, Z)`` and ``action (N, A)``."""
        ...

    def plan_reward(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        """Predicted reward ``(N,)`` of taking ``action (N, A)`` in ``z (N, Z)``."""
        ...

    def plan_value(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        """Predicted return ``(N,)`` of taking ``action`` in ``z`` and acting well afterwards."""
        ...


def has_policy(model: object) -> bool:
    """Whether ``model`` offers a policy prior for MPPI (``plan_policy``)."""
    return callable(getattr(model, "plan_policy", None))


def has_termination(model: object) -> bool:
    """Whether ``model`` predicts terminations (``plan_termination``)."""
    return callable(getattr(model, "plan_termination", None))
