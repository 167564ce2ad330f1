"""Model predictive path integral (MPPI) planning in a learned latent space, batched over
environments.

The procedure is the one of TD-MPC2 (Hansen et al. 2024, Sec. 3.4; ``TDMPC2._plan`` and
``_estimate_value`` of nicklashansen/tdmpc2 at commit ``e9f5932``): seed ``num_pi_trajs``
trajectories with the policy prior, warm-start the sampling mean from the previous plan shifted
by one step, then ``iterations`` times sample ``num_samples - num_pi_trajs`` action sequences
from a clipped Gaussian, score every sequence by the discounted predicted rewards plus the
bootstrapped value, keep the ``num_elites`` best and refit mean and standard deviation with
weights ``exp(temperature * (value - max))``. The action is drawn from the last elites by their
weights, plus exploration noise of the final standard deviation unless ``eval_mode``.

With ``objective: goal`` the score of a sequence is minus the distance of its last predicted
latent to the goal latent (:mod:`worldflux.planning.objectives`); everything else is unchanged.

Axis legend: ``B`` environments, ``S`` samples per environment, ``E`` elites, ``H`` horizon,
``A`` action size, ``Z`` latent size.
"""

from __future__ import annotations

import torch
from torch import Tensor

from worldflux.planning.base import Planner, PlanResult
from worldflux.planning.objectives import discounted_return
from worldflux.planning.protocol import PlanningError, has_policy

__all__ = ["MPPIPlanner", "PlanResult"]


class MPPIPlanner(Planner):
    """MPPI over a model that implements :mod:`worldflux.planning.protocol`.

    Args:
        action_dim: action size ``A``.
        horizon: planning horizon ``H``.
        iterations: refinement iterations.
        num_samples: action sequences per environment per iteration (policy ones included).
        num_elites: sequences kept to refit the sampling distribution.
        num_pi_trajs: sequences rolled out by the policy prior (0 when the model has none).
        min_std, max_std: clamp of the sampling standard deviation (``max_std`` is the initial one).
        temperature: inverse temperature of the elite weights.
        objective, goal_metric, action_low, action_high: see :class:`~worldflux.planning.base.Planner`.
    """

    name = "mppi"

    def __init__(
        self,
        action_dim: int,
        horizon: int = 3,
        iterations: int = 6,
        num_samples: int = 512,
        num_elites: int = 64,
        num_pi_trajs: int = 24,
        min_std: float = 0.05,
        max_std: float = 2.0,
        temperature: float = 0.5,
        objective: str = "return",
        goal_metric: str = "l2",
        action_low: float = -1.0,
        action_high: float = 1.0,
    ) -> None:
        super().__init__(action_dim, horizon, objective, goal_metric, action_low, action_high)
        if not 0 <= num_pi_trajs < num_samples or not 0 < num_elites <= num_samples:
            raise PlanningError(
                f"need 0 <= num_pi_trajs < num_samples and 0 < num_elites <= num_samples, got "
                f"{num_pi_trajs}, {num_samples}, {num_elites}"
            )
        self.iterations = int(iterations)
        self.num_samples = int(num_samples)
        self.num_elites = int(num_elites)
        self.num_pi_trajs = int(num_pi_trajs)
        self.min_std = float(min_std)
        self.max_std = float(max_std)
        self.temperature = float(temperature)

    def estimate_value(
        self,
        model: object,
        z: Tensor,
        actions: Tensor,
        discount: Tensor,
        task: Tensor | None,
    ) -> Tensor:
        """Discounted return ``(N,)`` of ``actions (H, N, A)`` from ``z (N, Z)`` (see
        :func:`~worldflux.planning.objectives.discounted_return`)."""
        return discounted_return(model, z, actions, discount, task)

    @torch.no_grad()
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
        b, dev = z.shape[0], z.device
        h, a_dim, s = self.horizon, self.action_dim, self.num_samples
        p = self.num_pi_trajs if has_policy(model) else 0
        disc = torch.as_tensor(discount, dtype=z.dtype, device=dev).expand(b)
        mask = None if action_mask is None else action_mask.to(z.dtype).unsqueeze(1)  # (B, 1, A)

        def flat_task(n: int) -> Tensor | None:
            return None if task is None else task.repeat_interleave(n)

        actions = torch.empty(h, b, s, a_dim, device=dev, dtype=z.dtype)
        if p > 0:
            zp, tp = z.repeat_interleave(p, dim=0), flat_task(p)
            for t in range(h):
                act = model.plan_policy(zp, tp)  # type: ignore[attr-defined]
                actions[t, :, :p] = act.reshape(b, p, a_dim)
                if t < h - 1:
                    zp = model.plan_next(zp, act, tp)  # type: ignore[attr-defined]

        mean = self.warm_start(prev_mean, z)
        std = torch.full_like(mean, self.max_std)
        zs, ts, ds = z.repeat_interleave(s, dim=0), flat_task(s), disc.repeat_interleave(s)
        gs = None if goal is None else goal.repeat_interleave(s, dim=0)
        best = []
        for _ in range(self.iterations):
            noise = torch.randn(h, b, s - p, a_dim, device=dev, dtype=z.dtype)
            sampled = mean.transpose(0, 1).unsqueeze(2) + std.transpose(0, 1).unsqueeze(2) * noise
            actions[:, :, p:] = self.clamp(sampled)
            if mask is not None:
                actions = actions * mask
            value = self.score(model, zs, actions.reshape(h, b * s, a_dim), ds, ts, gs)
            value = value.reshape(b, s).nan_to_num(0.0)
            elite_value, idx = torch.topk(value, self.num_elites, dim=1)  # (B, E)
            elites = torch.gather(actions, 2, idx[None, :, :, None].expand(h, b, -1, a_dim))
            best.append(elite_value.mean(1))
            score = torch.exp(self.temperature * (elite_value - elite_value[:, :1]))
            score = score / score.sum(1, keepdim=True)  # (B, E)
            w = score[None, :, :, None]  # (1, B, E, 1)
            mean = (w * elites).sum(2) / (w.sum(2) + 1e-9)  # (H, B, A)
            var = (w * (elites - mean.unsqueeze(2)) ** 2).sum(2) / (w.sum(2) + 1e-9)
            std = var.sqrt().clamp(self.min_std, self.max_std)
            mean, std = mean.transpose(0, 1), std.transpose(0, 1)  # (B, H, A)
            if mask is not None:
                mean, std = mean * mask, std * mask

        choice = torch.multinomial(score, 1).squeeze(1)  # (B,)
        action = elites[0, torch.arange(b, device=dev), choice]  # (B, A)
        if not eval_mode:
            action = action + std[:, 0] * torch.randn_like(action)
        return PlanResult(
            action=self.clamp(action),
            mean=mean,
            std=std,
            elite_value=elite_value,
            iteration_value=torch.stack(best),
        )
