"""CEM for V-JEPA 2-AC: the shared CEM, scored by rollouts that keep the frame history.

:class:`worldflux.planning.cem.CEMPlanner` samples, clips, keeps the top-k and refits with
momentum exactly as V-JEPA 2-AC's planner (``notebooks/utils/mpc_utils.py`` ``cem`` of
facebookresearch/vjepa2 @ c2963a4, facts only). Its default goal score steps a flat latent with
``plan_next``, one step at a time; V-JEPA 2-AC's predictor instead sees every earlier frame of the
rollout (the context frame and the predicted ones, frame-causal attention). This subclass
therefore scores a whole sequence with the model's ``plan_rollout`` and keeps the shared
objective (minus the mean L1 distance of the last predicted frame to the goal, both
layer-normed).

Axis legend: ``H`` horizon, ``N`` flat batch of sequences, ``A`` action size, ``Z`` latent size.
"""

from __future__ import annotations

from torch import Tensor

from worldflux.planning.cem import CEMPlanner
from worldflux.planning.objectives import latent_distance
from worldflux.planning.protocol import PlanningError


class VJEPA2CEM(CEMPlanner):
    """:class:`~worldflux.planning.cem.CEMPlanner` with the goal objective (L1 by default) scored
    on history-keeping rollouts; takes the same arguments."""

    def __init__(self, action_dim: int, **kwargs: object) -> None:
        kwargs.setdefault("objective", "goal")
        kwargs.setdefault("goal_metric", "l1")
        super().__init__(action_dim, **kwargs)  # type: ignore[arg-type]
        if self.objective != "goal":
            raise PlanningError(f"VJEPA2CEM plans toward goals only, got {self.objective!r}")

    def score(
        self,
        model: object,
        z: Tensor,
        actions: Tensor,
        discount: Tensor,
        task: Tensor | None,
        goal: Tensor | None,
    ) -> Tensor:
        """Minus the goal distance ``(N,)`` of the last frame predicted for ``actions (H, N, A)``."""
        if goal is None:
            raise PlanningError("a goal planner needs a goal: pass goal=<goal observation> to act")
        last = model.plan_rollout(z, actions)  # type: ignore[attr-defined]
        return -latent_distance(last, goal, self.goal_metric)
