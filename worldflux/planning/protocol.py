"""What a model must offer to be planned with.

Every planner in :mod:`worldflux.planning` works on flat batches of ``N = envs x samples`` latent
states ``z (N, Z)``; ``task`` is ``None`` or a ``(N,)`` long tensor that the model may use
(multitask models) or ignore. Two objectives need two sets of methods:

- **return planning** (:class:`LatentPlanningModel`): ``plan_next``, ``plan_reward`` and
  ``plan_value``; optionally ``plan_policy`` (a policy prior that seeds trajectories and picks the
  bootstrap action) and ``plan_termination`` (episodic models);
- **goal planning** (:class:`GoalPlanningModel`): ``plan_encode`` (an observation to the latent
  space the dynamics work in) and ``plan_next``.

:func:`require` checks a model against what a planner's objective needs and raises a
:class:`PlanningError` that names every missing method.

Axis legend: ``N`` flat batch of latent states, ``Z`` latent size, ``A`` action size.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from worldflux.errors import WorldFluxError

#: Methods each objective needs from a model.
REQUIRED_METHODS: dict[str, tuple[str, ...]] = {
    "return": ("plan_next", "plan_reward", "plan_value"),
    "goal": ("plan_encode", "plan_next"),
}


class PlanningError(WorldFluxError, ValueError):
    """A planner cannot plan with this model, objective or goal."""


@runtime_checkable
class LatentPlanningModel(Protocol):
    """The latent-space interface return planning needs.

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


@runtime_checkable
class GoalPlanningModel(Protocol):
    """The interface goal planning needs: encode the goal observation, step the latent."""

    def plan_encode(self, obs: Any, task: Tensor | None) -> Tensor:
        """Latent ``(B, Z)`` of observations ``(B, *obs_shape)`` (the goal's encoding)."""
        ...

    def plan_next(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        """Next latent state ``(N, Z)`` from ``z (N, Z)`` and ``action (N, A)``."""
        ...


def require(model: object, objective: str, planner: str) -> None:
    """Raise :class:`PlanningError` unless ``model`` has every method ``objective`` needs.

    Args:
        model: the model to plan with.
        objective: ``"return"`` or ``"goal"``.
        planner: the planner's name, for the message.
    """
    if objective not in REQUIRED_METHODS:
        raise PlanningError(
            f"planner objective must be one of {sorted(REQUIRED_METHODS)}, got {objective!r}"
        )
    missing = [m for m in REQUIRED_METHODS[objective] if not callable(getattr(model, m, None))]
    if missing:
        raise PlanningError(
            f"{planner} with objective {objective!r} needs {type(model).__name__} to implement "
            f"{', '.join(missing)} (see worldflux.planning.protocol)"
        )


def has_policy(model: object) -> bool:
    """Whether ``model`` offers a policy prior for MPPI (``plan_policy``)."""
    return callable(getattr(model, "plan_policy", None))


def has_termination(model: object) -> bool:
    """Whether ``model`` predicts terminations (``plan_termination``)."""
    return callable(getattr(model, "plan_termination", None))
