"""TD-MPC2's loss pieces: two-hot regression in symlog space, the squashed-Gaussian policy
prior's log-likelihood and entropy, the running scale of the policy loss, and masked means.

Facts from ``tdmpc2/common/math.py``, ``scale.py`` and ``world_model.py`` of nicklashansen/tdmpc2
at commit ``e9f5932`` (and ``b67b21c``, the 2023 release, for the ``legacy`` entropy form).

Axis legend: ``B`` batch, ``T`` time (horizon steps), ``A`` action size, ``K`` bins.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from worldflux.nn.distributions import squashed_gaussian_sample, symlog_bins
from worldflux.nn.functional import symexp, symlog, twohot_loss, twohot_mean

# Shared with other families: the bins and the squashed-Gaussian policy sample.
two_hot_bins = symlog_bins
policy_sample = squashed_gaussian_sample


def two_hot_value(logits: Tensor, bins: Tensor) -> Tensor:
    """Scalar prediction ``(...)`` of two-hot logits ``(..., K)``: symexp of the expected bin."""
    return symexp(twohot_mean(logits, bins))


def soft_ce(logits: Tensor, target: Tensor, bins: Tensor) -> Tensor:
    """Cross-entropy ``(...)`` of logits ``(..., K)`` against the two-hot code of
    ``symlog(target)``, clipped to the bin range (the official ``soft_ce``)."""
    return twohot_loss(logits, symlog(target).clamp(bins[0], bins[-1]), bins)


def masked_mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``x (B, ...)`` over the rows where ``mask (B,)`` is set (plain mean if no mask)."""
    if mask is None:
        return x.mean()
    per_row = x.reshape(x.shape[0], -1).mean(-1)
    return (per_row * mask).sum() / mask.sum().clamp(min=1.0)


class RunningScale(nn.Module):
    """Running (EMA, rate ``tau``) 5th-95th percentile range of Q-values, at least 1.

    The policy loss divides Q-values by it so that its size does not depend on the reward scale.
    """

    value: Tensor
    percentiles: Tensor

    def __init__(self, tau: float = 0.01) -> None:
        super().__init__()
        self.tau = float(tau)
        self.register_buffer("value", torch.ones(1))
        self.register_buffer("percentiles", torch.tensor([5.0, 95.0]))

    def _percentile(self, x: Tensor) -> Tensor:
        """Linear-interpolated percentiles ``(2, ...)`` of ``x (B, ...)`` over ``B``."""
        n = x.shape[0]
        flat = x.reshape(n, -1)
        ordered = torch.sort(flat, dim=0).values
        pos = self.percentiles.to(x.dtype) * (n - 1) / 100
        lo = pos.floor()
        hi = (lo + 1).clamp(max=n - 1)
        w_hi = (pos - lo).unsqueeze(1)
        out = ordered[lo.long()] * (1 - w_hi) + ordered[hi.long()] * w_hi
        return out.reshape(2, *x.shape[1:])

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Move the scale towards the percentile range of ``x (B, ...)`` by ``tau``."""
        p = self._percentile(x.detach())
        self.value.lerp_(torch.clamp(p[1] - p[0], min=1.0).reshape(-1)[:1], self.tau)

    def forward(self, x: Tensor) -> Tensor:
        """``x / scale``."""
        return x / self.value


def discount_vector(discounts: list[float]) -> Tensor:
    """Per-task discounts as a float tensor ``(num_tasks,)``."""
    return torch.tensor(discounts, dtype=torch.float32)
