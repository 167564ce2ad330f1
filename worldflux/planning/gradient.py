"""Gradient-based planning: optimise an action sequence by backpropagating through the model.

As in the gradient planners of PLDM and DINO-WM (Sobal et al. 2025; Zhou et al. 2024): the action
sequence ``(H, A)`` is a free tensor, the model is unrolled from the current latent, the
objective (:mod:`worldflux.planning.objectives`: minus the predicted return, or the distance of the
last predicted latent to the goal latent) is backpropagated to the actions, Adam takes a step, and
the actions are clamped back into their bounds; ``iterations`` times. ``num_samples`` independent
sequences per environment start from the warm start plus Gaussian noise of ``init_std`` (the first
one from the warm start itself) and the best one after the last step is executed. The model's own
parameters get no gradient (``torch.autograd.grad`` on the actions only), so planning never
touches training state.

Axis legend: ``B`` environments, ``S`` sequences per environment, ``H`` horizon, ``A`` action size,
``Z`` latent size, ``I`` iterations.
"""

from __future__ import annotations

import torch
from torch import Tensor

from worldflux.planning.base import Planner, PlanResult
from worldflux.planning.protocol import PlanningError


class GradientPlanner(Planner):
    """Adam on the actions through a differentiable model.

    Args:
        action_dim: action size ``A``.
        horizon: planning horizon ``H``.
        iterations: Adam steps.
        num_samples: sequences optimised in parallel per environment (random restarts).
        lr: Adam learning rate.
        init_std: noise of the restarts around the warm start.
        exploration_std: Gaussian noise added to the executed action outside ``eval_mode``.
        objective, goal_metric, action_low, action_high: see :class:`~worldflux.planning.base.Planner`.
    """

    name = "gradient"

    def __init__(
        self,
        action_dim: int,
        horizon: int = 3,
        iterations: int = 20,
        num_samples: int = 4,
        lr: float = 0.1,
        init_std: float = 0.3,
        exploration_std: float = 0.1,
        objective: str = "return",
        goal_metric: str = "l2",
        action_low: float = -1.0,
        action_high: float = 1.0,
    ) -> None:
        super().__init__(action_dim, horizon, objective, goal_metric, action_low, action_high)
        if iterations < 1 or num_samples < 1 or lr <= 0 or init_std < 0 or exploration_std < 0:
            raise PlanningError(
                f"need iterations >= 1, num_samples >= 1, lr > 0 and non-negative stds, got "
                f"iterations={iterations}, num_samples={num_samples}, lr={lr}, "
                f"init_std={init_std}, exploration_std={exploration_std}"
            )
        self.iterations = int(iterations)
        self.num_samples = int(num_samples)
        self.lr = float(lr)
        self.init_std = float(init_std)
        self.exploration_std = float(exploration_std)

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
        """Plan from ``z (B, Z)``; see :meth:`worldflux.planning.base.Planner.plan`."""
        self.check(model, goal)
        b, dev, dt = z.shape[0], z.device, z.dtype
        h, a_dim, s = self.horizon, self.action_dim, self.num_samples
        mask = None if action_mask is None else action_mask.to(dt)[:, None, None]  # (B,1,1,A)
        start = self.warm_start(prev_mean, z).unsqueeze(1).repeat(1, s, 1, 1)  # (B, S, H, A)
        noise = torch.randn_like(start) * self.init_std
        noise[:, 0] = 0.0
        seqs = self.clamp(start + noise)
        if mask is not None:
            seqs = seqs * mask
        seqs.requires_grad_(True)
        optimiser = torch.optim.Adam([seqs], lr=self.lr)
        zs = z.detach().repeat_interleave(s, dim=0)
        ts = None if task is None else task.repeat_interleave(s)
        ds = torch.as_tensor(discount, dtype=dt, device=dev).expand(b).repeat_interleave(s)
        gs = None if goal is None else goal.detach().repeat_interleave(s, dim=0)

        def evaluate(x: Tensor) -> Tensor:
            flat = x.reshape(b * s, h, a_dim).transpose(0, 1)
            return self.score(model, zs, flat, ds, ts, gs).reshape(b, s)

        best = []
        with torch.enable_grad():
            for _ in range(self.iterations):
                value = evaluate(seqs)
                if not value.requires_grad:
                    raise PlanningError(
                        f"{type(model).__name__}'s planning methods are not differentiable in "
                        f"the actions; the gradient planner needs a differentiable model"
                    )
                (grad,) = torch.autograd.grad(-value.sum(), seqs, allow_unused=True)
                if grad is None:
                    raise PlanningError(
                        f"the {self.objective} objective of {type(model).__name__} does not "
                        f"depend on the actions; the gradient planner cannot optimise them"
                    )
                best.append(value.detach().max(1).values)
                seqs.grad = grad
                optimiser.step()
                with torch.no_grad():
                    seqs.copy_(self.clamp(seqs))
                    if mask is not None:
                        seqs.mul_(mask)
        with torch.no_grad():
            final = seqs.detach()
            value = evaluate(final)
            top_value, top = value.max(1)  # (B,)
            plan = final[torch.arange(b, device=dev), top]  # (B, H, A)
            best.append(top_value)
            action = plan[:, 0]
            if not eval_mode and self.exploration_std > 0:
                action = action + self.exploration_std * torch.randn_like(action)
            if mask is not None:
                action = action * mask[:, 0, 0]
        return PlanResult(
            action=self.clamp(action),
            mean=plan,
            std=torch.zeros_like(plan),
            elite_value=top_value[:, None],
            iteration_value=torch.stack(best),
        )
