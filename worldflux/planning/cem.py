"""The cross-entropy method (CEM) in a learned latent space, batched over environments.

The procedure follows V-JEPA 2-AC's planner (Assran et al. 2025, Sec. 4 "planning";
facebookresearch/vjepa2, the ``cem`` of its world-model wrapper; facts only): sample
``num_samples`` action sequences of length ``horizon`` from a diagonal Gaussian, clip them to the
action bounds, score them, keep the ``num_elites`` best (top-k), and refit the Gaussian to the
elites' mean and standard deviation with momentum (``mean <- m * mean + (1 - m) * elite_mean``,
the same for the standard deviation with its own momentum); repeat ``iterations`` times. V-JEPA
2-AC plans toward a goal (L1 energy between the predicted and the goal latent) with 800 samples,
top 10, 10 iterations and momentum 0.15; here the objective is either that or the predicted return
(:mod:`worldflux.planning.objectives`).

Beyond that reference, for use as an agent's planner: the mean is warm-started from the previous
plan shifted by one step, ``num_pi_trajs`` sequences may come from a policy prior (as in MPPI;
0 turns it off), and outside ``eval_mode`` the executed action gets exploration noise of the final
standard deviation.

Axis legend: ``B`` environments, ``S`` samples per environment, ``E`` elites, ``H`` horizon,
``A`` action size, ``Z`` latent size.
"""

from __future__ import annotations

import torch
from torch import Tensor

from worldflux.planning.base import Planner, PlanResult
from worldflux.planning.protocol import PlanningError, has_policy


class CEMPlanner(Planner):
    """CEM with top-k elites and momentum on the sampling mean and standard deviation.

    Args:
        action_dim: action size ``A``.
        horizon: planning horizon ``H``.
        iterations: refinement iterations.
        num_samples: action sequences per environment per iteration (policy ones included).
        num_elites: the top-k sequences the Gaussian is refitted to.
        num_pi_trajs: sequences rolled out by the model's policy prior (0: none).
        init_std: initial standard deviation of the sampling Gaussian.
        min_std, max_std: clamp of the refitted standard deviation.
        momentum_mean: weight of the previous mean in the refit (0: plain CEM).
        momentum_std: weight of the previous standard deviation in the refit.
        objective, goal_metric, action_low, action_high: see :class:`~worldflux.planning.base.Planner`.
    """

    name = "cem"

    def __init__(
        self,
        action_dim: int,
        horizon: int = 3,
        iterations: int = 6,
        num_samples: int = 512,
        num_elites: int = 64,
        num_pi_trajs: int = 0,
        init_std: float = 1.0,
        min_std: float = 0.05,
        max_std: float = 2.0,
        momentum_mean: float = 0.15,
        momentum_std: float = 0.15,
        objective: str = "return",
        goal_metric: str = "l1",
        action_low: float = -1.0,
        action_high: float = 1.0,
    ) -> None:
        super().__init__(action_dim, horizon, objective, goal_metric, action_low, action_high)
        if not 0 <= num_pi_trajs < num_samples or not 1 < num_elites <= num_samples:
            raise PlanningError(
                f"need 0 <= num_pi_trajs < num_samples and 1 < num_elites <= num_samples, got "
                f"num_pi_trajs={num_pi_trajs}, num_samples={num_samples}, num_elites={num_elites}"
            )
        if not (0 <= momentum_mean < 1 and 0 <= momentum_std < 1):
            raise PlanningError(
                f"momentum_mean and momentum_std must be in [0, 1), got {momentum_mean}, "
                f"{momentum_std}"
            )
        if not 0 < min_std <= max_std or init_std <= 0:
            raise PlanningError(
                f"need 0 < min_std <= max_std and init_std > 0, got min_std={min_std}, "
                f"max_std={max_std}, init_std={init_std}"
            )
        self.iterations = int(iterations)
        self.num_samples = int(num_samples)
        self.num_elites = int(num_elites)
        self.num_pi_trajs = int(num_pi_trajs)
        self.init_std = float(init_std)
        self.min_std = float(min_std)
        self.max_std = float(max_std)
        self.momentum_mean = float(momentum_mean)
        self.momentum_std = float(momentum_std)

    def _policy_sequences(self, model: object, z: Tensor, task: Tensor | None) -> Tensor:
        """``(B, P, H, A)`` sequences of the policy prior rolled out from ``z (B, Z)``."""
        b, p = z.shape[0], self.num_pi_trajs
        zp = z.repeat_interleave(p, dim=0)
        tp = None if task is None else task.repeat_interleave(p)
        seq = []
        for t in range(self.horizon):
            act = model.plan_policy(zp, tp)  # type: ignore[attr-defined]
            seq.append(act.reshape(b, p, self.action_dim))
            if t < self.horizon - 1:
                zp = model.plan_next(zp, act, tp)  # type: ignore[attr-defined]
        return torch.stack(seq, 2)

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
        b, dev, dt = z.shape[0], z.device, z.dtype
        h, a_dim, s = self.horizon, self.action_dim, self.num_samples
        p = self.num_pi_trajs if has_policy(model) else 0
        mask = None if action_mask is None else action_mask.to(dt)[:, None, None]  # (B,1,1,A)
        policy = self._policy_sequences(model, z, task) if p > 0 else None

        mean = self.warm_start(prev_mean, z)
        std = torch.full_like(mean, self.init_std)
        zs = z.repeat_interleave(s, dim=0)
        ts = None if task is None else task.repeat_interleave(s)
        ds = torch.as_tensor(discount, dtype=dt, device=dev).expand(b).repeat_interleave(s)
        gs = None if goal is None else goal.repeat_interleave(s, dim=0)
        best = []
        for _ in range(self.iterations):
            noise = torch.randn(b, s - p, h, a_dim, device=dev, dtype=dt)
            sampled = self.clamp(mean.unsqueeze(1) + std.unsqueeze(1) * noise)  # (B, S-P, H, A)
            seqs = sampled if policy is None else torch.cat([policy, sampled], 1)
            if mask is not None:
                seqs = seqs * mask
            flat = seqs.reshape(b * s, h, a_dim).transpose(0, 1)  # (H, B*S, A)
            value = self.score(model, zs, flat, ds, ts, gs).reshape(b, s).nan_to_num(-1e9)
            elite_value, idx = torch.topk(value, self.num_elites, dim=1)  # (B, E)
            elites = torch.gather(seqs, 1, idx[:, :, None, None].expand(-1, -1, h, a_dim))
            best.append(elite_value.mean(1))
            new_mean = elites.mean(1)
            new_std = elites.std(1, unbiased=False)
            mean = self.momentum_mean * mean + (1 - self.momentum_mean) * new_mean
            std = self.momentum_std * std + (1 - self.momentum_std) * new_std
            std = std.clamp(self.min_std, self.max_std)
            if mask is not None:
                mean, std = mean * mask[:, 0], std * mask[:, 0]

        action = mean[:, 0]
        if not eval_mode:
            action = action + std[:, 0] * torch.randn_like(action)
        return PlanResult(
            action=self.clamp(action),
            mean=mean,
            std=std,
            elite_value=elite_value,
            iteration_value=torch.stack(best),
        )
