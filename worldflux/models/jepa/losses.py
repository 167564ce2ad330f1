"""PLDM's training objective: prediction plus VICReg terms plus inverse dynamics.

The terms as ``pldm/objectives/vicreg.py`` and ``idm.py`` of vladisai/PLDM @ cbaf674 define them
(Sobal et al. 2025, Sec. 3): the predictor rolls out from the first encoding with the actions, and

- ``sim``: mean squared error of predicted and encoded embeddings, steps ``1..T-1``;
- ``std``: hinge ``relu(margin - std)`` on each feature's standard deviation across the batch,
  first step only; ``cov``: squared off-diagonal covariances across the batch, first step only,
  divided by ``Z (Z - 1)``;
- ``std_t``: the same hinge on each sequence's standard deviation across time (steps ``1..``);
- ``sim_t``: mean squared difference of consecutive encodings;
- ``idm``: mean squared error of the actions an MLP predicts from consecutive encodings.

Sequences that cross an episode start (``first`` inside the window) restart the rollout there
and leave the pairs across the boundary out of ``sim``, ``sim_t`` and ``idm``; without such
starts every term equals the reference's.

Axis legend: ``B`` batch, ``T`` time, ``Z`` embedding size, ``A`` action size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def std_hinge(x: Tensor, margin: float) -> Tensor:
    """``mean_z relu(margin - sqrt(var + 1e-4))`` over axis ``-2`` of ``x (..., N, Z)``; ``(...)``."""
    std = torch.sqrt(x.var(dim=-2) + 1e-4)
    return F.relu(margin - std).mean(-1)


def covariance_penalty(x: Tensor) -> Tensor:
    """Squared off-diagonal covariance of ``x (N, Z)`` over ``N``, divided by ``Z (Z - 1)``."""
    n, z = x.shape
    x = x - x.mean(0, keepdim=True)
    cov = x.T @ x / (n - 1)
    off = cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()
    return off / (z * (z - 1))


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x (B, T', ...)`` over the entries whose ``mask (B, T')`` is true."""
    m = mask.to(x.dtype).view(*mask.shape, *([1] * (x.dim() - mask.dim())))
    count = m.sum() * (x[0, 0].numel())
    return (x * m).sum() / count.clamp_min(1.0)


def pldm_terms(
    enc: Tensor,
    pred: Tensor,
    valid: Tensor,
    std_margin: float,
    std_margin_t: float,
) -> dict[str, Tensor]:
    """The unweighted VICReg and prediction terms.

    Args:
        enc: encodings ``(B, T, Z)``.
        pred: predictions ``(B, T, Z)`` (step 0 is the encoding itself).
        valid: ``(B, T-1)``, true where step ``t + 1`` continues the episode of step ``t``.
        std_margin, std_margin_t: hinge targets of ``std`` and ``std_t``.
    """
    first = enc[:, 0]
    terms = {
        "sim": masked_mean((enc[:, 1:] - pred[:, 1:]).pow(2), valid),
        "std": std_hinge(first, std_margin),
        "cov": covariance_penalty(first),
        "sim_t": masked_mean((enc[:, 1:] - enc[:, :-1]).pow(2), valid),
    }
    if enc.shape[1] > 2:  # a standard deviation over time needs two steps after the first
        terms["std_t"] = std_hinge(enc[:, 1:], std_margin_t).mean()
    else:
        terms["std_t"] = enc.new_zeros(())
    return terms


def idm_loss(pred_action: Tensor, action: Tensor, valid: Tensor) -> Tensor:
    """Mean squared error ``(B, T-1, A)`` of predicted and taken actions on valid pairs."""
    return masked_mean((pred_action - action).pow(2), valid)
