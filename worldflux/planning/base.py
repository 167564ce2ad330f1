"""What every planner shares: its arguments, its result, warm starts and scoring.

A planner is a plain object (no parameters, nothing to train) built from one file of the
``planner`` config group with the action size as a call-site argument. Its :meth:`Planner.plan`
takes a model, the current latent states of ``B`` environments and the acting options, and returns
a :class:`PlanResult`; the model's ``act`` keeps ``PlanResult.mean`` as the next call's warm start.

Axis legend: ``B`` environments, ``H`` horizon, ``A`` action size, ``Z`` latent size,
``I`` iterations.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from worldflux.errors import ShapeError
from worldflux.planning import objectives
from worldflux.planning.protocol import PlanningError, require


@dataclass
class PlanResult:
    """What :meth:`Planner.plan` returns.

    Attributes:
        action: the action to execute ``(B, A)``.
        mean: the final plan (sampling mean, or optimised sequence) ``(B, H, A)``; the warm
            start of the next call.
        std: the final sampling standard deviation ``(B, H, A)`` (zeros for the gradient planner).
        elite_value: scores of the final elites ``(B, E)`` (of the final plan, ``E = 1``, for the
            gradient planner).
        iteration_value: the mean elite score per iteration ``(I, B)``.
    """

    action: Tensor
    mean: Tensor
    std: Tensor
    elite_value: Tensor
    iteration_value: Tensor


class Planner(abc.ABC):
    """Base class of the planners (see the module docstring).

    Args:
        action_dim: action size ``A`` (a call-site argument, never written in a config file).
        horizon: planning horizon ``H``.
        objective: ``"return"`` (predicted rewards and value) or ``"goal"`` (distance of the last
            predicted latent to the encoded goal observation).
        goal_metric: ``"l1"``, ``"l2"`` or ``"cosine"`` (goal objective only).
        action_low, action_high: bounds of every action dimension.
    """

    name = "planner"

    def __init__(
        self,
        action_dim: int,
        horizon: int,
        objective: str = "return",
        goal_metric: str = "l2",
        action_low: float = -1.0,
        action_high: float = 1.0,
    ) -> None:
        objectives.check_objective(objective, goal_metric)
        if int(action_dim) < 1 or int(horizon) < 1:
            raise PlanningError(
                f"action_dim and horizon must be >= 1, got action_dim={action_dim}, "
                f"horizon={horizon}"
            )
        if not action_low < action_high:
            raise PlanningError(
                f"need action_low < action_high, got action_low={action_low}, "
                f"action_high={action_high}"
            )
        self.action_dim = int(action_dim)
        self.horizon = int(horizon)
        self.objective = objective
        self.goal_metric = goal_metric
        self.action_low = float(action_low)
        self.action_high = float(action_high)

    @abc.abstractmethod
    def plan(
        self,
        model: object,
        z: Tensor,
        *,
        prev_mean: Tensor | None = None,
        discount: float | Tensor = 0.99,
        task: Tensor | None = None,
        action_mask: Tensor | None = None,
        eval_mode: bool = False,
        goal: Tensor | None = None,
    ) -> PlanResult:
        """Plan from the latent states ``z (B, Z)`` of ``B`` environments.

        Args:
            model: the model (see :mod:`worldflux.planning.protocol` for what it must offer).
            z: current latent state per environment.
            prev_mean: previous plan ``(B, H, A)``; shifted one step forward as the warm start
                (zeros, or ``None``, for environments that just started).
            discount: scalar or per-environment ``(B,)`` discount (return objective).
            task: optional ``(B,)`` task ids passed through to the model.
            action_mask: optional ``(B, A)`` 0/1 mask of the action dimensions in use.
            eval_mode: no exploration noise on the returned action.
            goal: goal latents ``(B, Z)`` (the model's encoding of the goal observations);
                required by the goal objective.
        """

    def compile(self, compile_fn: Callable[[Callable[..., Tensor]], Callable[..., Tensor]]) -> None:
        """Compile the inner loop's cost: scoring sampled sequences by rolling out the model.

        ``compile_fn`` is the model's :meth:`~worldflux.core.training.PhaseTraining.compile_fn`
        (``torch.compile`` with the family's options); ``compile=true`` calls this for a model's
        planner. The compiled scoring shadows :meth:`score` on this planner only.
        """
        self.score = compile_fn(type(self).score.__get__(self))  # type: ignore[method-assign]

    # ------------------------------------------------------------------ shared steps
    def check(self, model: object, goal: Tensor | None) -> None:
        """Check that ``model`` offers what the objective needs and that a goal is given."""
        require(model, self.objective, type(self).__name__)
        if self.objective == "goal" and goal is None:
            raise PlanningError(
                f"{type(self).__name__} has objective 'goal' but no goal was given: pass "
                f"goal=<goal observation> to act"
            )
        if self.objective == "return" and goal is not None:
            raise PlanningError(
                f"a goal was given but {type(self).__name__} has objective 'return'; choose "
                f"objective: goal in the planner config to plan toward it"
            )

    def warm_start(self, prev_mean: Tensor | None, z: Tensor) -> Tensor:
        """Initial mean ``(B, H, A)``: ``prev_mean`` shifted one step forward, zeros if ``None``."""
        b, h, a_dim = z.shape[0], self.horizon, self.action_dim
        mean = torch.zeros(b, h, a_dim, device=z.device, dtype=z.dtype)
        if prev_mean is not None:
            if prev_mean.shape != (b, h, a_dim):
                raise ShapeError(
                    f"prev_mean must have shape (B, H, A) = {(b, h, a_dim)}, got "
                    f"{tuple(prev_mean.shape)}"
                )
            mean[:, :-1] = prev_mean[:, 1:]
        return mean

    def score(
        self,
        model: object,
        z: Tensor,
        actions: Tensor,
        discount: Tensor,
        task: Tensor | None,
        goal: Tensor | None,
    ) -> Tensor:
        """Score ``(N,)`` of ``actions (H, N, A)`` from ``z (N, Z)`` under the objective."""
        return objectives.score(
            model,
            z,
            actions,
            objective=self.objective,
            goal_metric=self.goal_metric,
            discount=discount,
            task=task,
            goal=goal,
        )

    def clamp(self, actions: Tensor) -> Tensor:
        """Actions clamped to ``[action_low, action_high]``."""
        return actions.clamp(self.action_low, self.action_high)
