"""Symlog transforms and two-hot discrete regression, shared by DreamerV3 and TD-MPC2.

DreamerV3 (Hafner et al. 2024, Eq. 9-11) predicts scalars as a two-hot distribution over bins
that are evenly spaced in symlog space and decodes with symexp; TD-MPC2 (Hansen et al. 2024)
regresses reward and value the same way over 101 bins in ``[-10, 10]`` symlog space. Both
reduce to the functions below with a given ``bins`` tensor.
"""

from __future__ import annotations

import torch
from torch import Tensor


def symlog(x: Tensor) -> Tensor:
    """``sign(x) * log(1 + |x|)``."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: Tensor) -> Tensor:
    """Inverse of :func:`symlog`: ``sign(x) * (exp(|x|) - 1)``."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


def twohot(x: Tensor, bins: Tensor) -> Tensor:
    """Encode ``x (...)`` as weights ``(..., K)`` on the two nearest of ``K`` sorted ``bins``.

    Values outside the bin range put all weight on the nearest edge bin. The encoding satisfies
    ``(twohot(x, bins) * bins).sum(-1) == clamp(x, bins[0], bins[-1])``.
    """
    x = x.detach().to(bins.dtype)
    k = bins.numel()
    below = (torch.searchsorted(bins, x.contiguous(), right=True) - 1).clamp(0, k - 1)
    above = (below + 1).clamp(0, k - 1)
    lo, hi = bins[below], bins[above]
    span = torch.where(above == below, torch.ones_like(lo), hi - lo)
    w_hi = ((x - lo) / span).clamp(0.0, 1.0)
    w_hi = torch.where(above == below, torch.zeros_like(w_hi), w_hi)
    out = torch.zeros(*x.shape, k, dtype=bins.dtype, device=bins.device)
    out.scatter_add_(-1, below.unsqueeze(-1), (1.0 - w_hi).unsqueeze(-1))
    out.scatter_add_(-1, above.unsqueeze(-1), w_hi.unsqueeze(-1))
    return out


def twohot_mean(logits: Tensor, bins: Tensor) -> Tensor:
    """Expected bin value ``(...)`` under ``softmax(logits (..., K))``."""
    return (torch.softmax(logits, dim=-1) * bins).sum(-1)


def twohot_loss(logits: Tensor, target: Tensor, bins: Tensor) -> Tensor:
    """Cross-entropy ``(...)`` between ``softmax(logits)`` and ``twohot(target, bins)``."""
    return -(twohot(target, bins) * torch.log_softmax(logits, dim=-1)).sum(-1)
