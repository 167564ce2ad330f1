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

Axis legend: ``B`` environments, ``S`` samples per environment, ``E`` elites, ``H`` horizon,
``A`` action size, ``Z`` latent size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from worldflux.errors import ShapeError
from worldflux.planning.protocol import LatentPlanningModel, has_policy, has_termination


@dataclass
class PlanResult:
    """What :meth:`MPPIPlanner.plan` returns.

    Attributes:
        action: the action to execute ``(B, A)``.
        mean: the final sampling mean ``(B, H, A)`` (the warm start of the next call).
        std: the final sampling standard deviation ``(B, H, A)``.
        elite_value: estimated returns of the last elites ``(B, E)``.
        iteration_value: mean estimated return of the elites per iteration ``(iterations, B)``.
    """

    action: Tensor
    mean: Tensor
    std: Tensor
    elite_value: Tensor
    iteration_value: Tensor


class MPPIPlanner:
    """MPPI over a :class:`~worldflux.planning.protocol.LatentPlanningModel`.

    Args:
        action_dim: action size ``A``; actions live in ``[-1, 1]``.
        horizon: planning horizon ``H``.
        iterations: refinement iterations.
        num_samples: action sequences per environment per iteration (policy ones included).
        num_elites: sequences kept to refit the sampling distribution.
        num_pi_trajs: sequences rolled out by the policy prior (0 when the model has none).
        min_std, max_std: clamp of the sampling standard deviation (``max_std`` is the initial one).
        temperature: inverse temperature of the elite weights.
    """

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
    ) -> None:
        if not 0 <= num_pi_trajs < num_samples or not 0 < num_elites <= num_samples:
            raise ValueError(
                f"need 0 <= num_pi_trajs < num_samples and 0 < num_elites <= num_samples, got "
                f"{num_pi_trajs}, {num_samples}, {num_elites}"
            )
        self.action_dim = int(action_dim)
        self.horizon = int(horizon)
        self.iterations = int(iterations)
        self.num_samples = int(num_samples)
        self.num_elites = int(num_elites)
        self.num_pi_trajs = int(num_pi_trajs)
        self.min_std = float(min_std)
        self.max_std = float(max_std)
        self.temperature = float(temperature)

    # ------------------------------------------------------------------ value of a sequence
    def estimate_value(
        self,
        model: LatentPlanningModel,
        z: Tensor,
        actions: Tensor,
        discount: Tensor,
        task: Tensor | None,
    ) -> Tensor:
        """Discounted return ``(N,)`` of ``actions (H, N, A)`` from ``z (N, Z)``.

        ``sum_t gamma^t r_t + gamma^H Q(z_H, pi(z_H))``, cut at the first predicted termination
        (probability > 0.5) when the model predicts terminations; ``discount`` is ``(N,)``.
        """
        ret = torch.zeros(z.shape[0], device=z.device, dtype=z.dtype)
        scale = torch.ones_like(ret)
        alive = torch.ones_like(ret)
        terminating = has_termination(model)
        for t in range(actions.shape[0]):
            reward = model.plan_reward(z, actions[t], task)
            z = model.plan_next(z, actions[t], task)
            ret = ret + scale * alive * reward
            scale = scale * discount
            if terminating:
                p_end = model.plan_termination(z, task)  # type: ignore[attr-defined]
                if p_end is not None:
                    alive = alive * (p_end <= 0.5).to(alive.dtype)
        # Bootstrap with the policy prior's action, or the sequence's last one without a policy.
        policy = getattr(model, "plan_policy", None) if has_policy(model) else None
        final_action = policy(z, task) if policy is not None else actions[-1]
        return ret + scale * alive * model.plan_value(z, final_action, task)

    # ------------------------------------------------------------------ planning
    @torch.no_grad()
    def plan(
        self,
        model: LatentPlanningModel,
        z: Tensor,
        *,
        prev_mean: Tensor | None = None,
        discount: float | Tensor = 0.99,
        task: Tensor | None = None,
        action_mask: Tensor | None = None,
        eval_mode: bool = False,
    ) -> PlanResult:
        """Plan from the latent states ``z (B, Z)`` of ``B`` environments.

        Args:
            model: the latent model.
            z: current latent state per environment.
            prev_mean: previous plan ``(B, H, A)``; it is shifted one step forward as the warm
                start (zeros, or ``None``, for environments that just started).
            discount: scalar or per-environment ``(B,)`` discount.
            task: optional ``(B,)`` task ids passed through to the model.
            action_mask: optional ``(B, A)`` 0/1 mask of the action dimensions in use.
            eval_mode: skip the exploration noise on the returned action.
        """
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
                    zp = model.plan_next(zp, act, tp)

        mean = torch.zeros(b, h, a_dim, device=dev, dtype=z.dtype)
        if prev_mean is not None:
            if prev_mean.shape != (b, h, a_dim):
                raise ShapeError(
                    f"prev_mean must have shape (B, H, A) = {(b, h, a_dim)}, got "
                    f"{tuple(prev_mean.shape)}"
                )
            mean[:, :-1] = prev_mean[:, 1:]
        std = torch.full_like(mean, self.max_std)
        zs, ts, ds = z.repeat_interleave(s, dim=0), flat_task(s), disc.repeat_interleave(s)
        best = []
        for _ in range(self.iterations):
            noise = torch.randn(h, b, s - p, a_dim, device=dev, dtype=z.dtype)
            sampled = mean.transpose(0, 1).unsqueeze(2) + std.transpose(0, 1).unsqueeze(2) * noise
            actions[:, :, p:] = sampled.clamp(-1, 1)
            if mask is not None:
                actions = actions * mask
            value = self.estimate_value(model, zs, actions.reshape(h, b * s, a_dim), ds, ts)
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
            action=action.clamp(-1, 1),
            mean=mean,
            std=std,
            elite_value=elite_value,
            iteration_value=torch.stack(best),
        )
