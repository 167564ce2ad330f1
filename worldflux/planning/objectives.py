"""What a planner optimises: the predicted return, or the distance to a goal latent.

Both objectives score ``N`` action sequences ``actions (H, N, A)`` from latent states
``z (N, Z)``; higher is better, and the score is differentiable in ``actions`` whenever the model
is (the gradient planner relies on it).

- ``return``: ``sum_t gamma^t r_t + gamma^H V(z_H, a_H)``, cut at the first predicted termination
  (probability > 0.5) when the model predicts terminations. This is TD-MPC2's estimate
  (``_estimate_value`` of nicklashansen/tdmpc2 @ ``e9f5932``), operation for operation.
- ``goal``: minus the distance between the last predicted latent ``z_H`` and the goal latent
  (the encoded goal observation), with an ``l1`` (mean absolute difference, as V-JEPA 2-AC's
  planning energy), ``l2`` (Euclidean) or ``cosine`` (``1 - cos``) metric.

Axis legend: ``H`` horizon, ``N`` flat batch of sequences, ``A`` action size, ``Z`` latent size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from worldflux.planning.protocol import PlanningError, has_policy, has_termination

OBJECTIVES = ("return", "goal")
GOAL_METRICS = ("l1", "l2", "cosine")


def check_objective(objective: str, goal_metric: str) -> None:
    """Raise :class:`PlanningError` for an unknown objective or goal metric."""
    if objective not in OBJECTIVES:
        raise PlanningError(f"planner objective must be one of {OBJECTIVES}, got {objective!r}")
    if goal_metric not in GOAL_METRICS:
        raise PlanningError(f"goal_metric must be one of {GOAL_METRICS}, got {goal_metric!r}")


def discounted_return(
    model: object, z: Tensor, actions: Tensor, discount: Tensor, task: Tensor | None
) -> Tensor:
    """Predicted discounted return ``(N,)`` of ``actions (H, N, A)`` from ``z (N, Z)``.

    ``discount`` is ``(N,)``. The model needs ``plan_next``, ``plan_reward`` and ``plan_value``;
    ``plan_policy`` picks the bootstrap action (the sequence's last action otherwise) and
    ``plan_termination`` stops the sum after a predicted termination.
    """
    ret = torch.zeros(z.shape[0], device=z.device, dtype=z.dtype)
    scale = torch.ones_like(ret)
    alive = torch.ones_like(ret)
    terminating = has_termination(model)
    for t in range(actions.shape[0]):
        reward = model.plan_reward(z, actions[t], task)  # type: ignore[attr-defined]
        z = model.plan_next(z, actions[t], task)  # type: ignore[attr-defined]
        ret = ret + scale * alive * reward
        scale = scale * discount
        if terminating:
            p_end = model.plan_termination(z, task)  # type: ignore[attr-defined]
            if p_end is not None:
                alive = alive * (p_end <= 0.5).to(alive.dtype)
    policy = getattr(model, "plan_policy", None) if has_policy(model) else None
    final_action = policy(z, task) if policy is not None else actions[-1]
    return ret + scale * alive * model.plan_value(z, final_action, task)  # type: ignore[attr-defined]


def latent_distance(pred: Tensor, goal: Tensor, metric: str) -> Tensor:
    """Distance ``(N,)`` between latents ``pred (N, Z)`` and ``goal (N, Z)``."""
    pred, goal = pred.flatten(1), goal.flatten(1)
    if metric == "l1":
        return (pred - goal).abs().mean(-1)
    if metric == "l2":
        return (pred - goal).pow(2).sum(-1).add(1e-12).sqrt()
    if metric == "cosine":
        return 1.0 - F.cosine_similarity(pred, goal, dim=-1)
    raise PlanningError(f"goal_metric must be one of {GOAL_METRICS}, got {metric!r}")


def goal_score(
    model: object, z: Tensor, actions: Tensor, goal: Tensor, task: Tensor | None, metric: str
) -> Tensor:
    """Minus the distance ``(N,)`` of the last predicted latent to ``goal (N, Z)``."""
    for t in range(actions.shape[0]):
        z = model.plan_next(z, actions[t], task)  # type: ignore[attr-defined]
    return -latent_distance(z, goal, metric)


def score(
    model: object,
    z: Tensor,
    actions: Tensor,
    *,
    objective: str,
    goal_metric: str,
    discount: Tensor,
    task: Tensor | None,
    goal: Tensor | None,
) -> Tensor:
    """Score ``(N,)`` (higher is better) of ``actions (H, N, A)`` under ``objective``."""
    if objective == "return":
        return discounted_return(model, z, actions, discount, task)
    if goal is None:
        raise PlanningError("a goal planner needs a goal: pass goal=<goal observation> to act")
    return goal_score(model, z, actions, goal, task, goal_metric)
