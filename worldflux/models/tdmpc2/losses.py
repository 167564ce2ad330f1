"""TD-MPC2's loss pieces: two-hot regression in symlog space, the squashed-Gaussian policy
prior's log-likelihood and entropy, the running scale of the policy loss, and masked means.

Facts from ``tdmpc2/common/math.py``, ``scale.py`` and ``world_model.py`` of nicklashansen/tdmpc2
at commit ``e9f5932`` (and ``b67b21c``, the 2023 release, for the ``legacy`` entropy form).

Axis legend: ``B`` batch, ``T`` time (horizon steps), ``A`` action size, ``K`` bins.
"""

from __future__ import annotations

import torch
from torch import Tensor

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


def discount_vector(discounts: list[float]) -> Tensor:
    """Per-task discounts as a float tensor ``(num_tasks,)``."""
    return torch.tensor(discounts, dtype=torch.float32)
