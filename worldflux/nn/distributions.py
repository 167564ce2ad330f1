"""Distributions and discrete regression shared by the families.

* :func:`unimix_logprobs`, :func:`sample_onehot`: categoricals mixed with a little uniform and
  sampled straight-through (DreamerV3's latents, Hafner et al. 2024, Sec. 3 and Appendix).
* :class:`Categorical`, :class:`BoundedNormal`: DreamerV3's actor distributions (a unimix
  categorical over one-hot actions; a normal with ``tanh`` mean and bounded std, unsquashed).
* :func:`squashed_gaussian_sample`: TD-MPC2's tanh-squashed Gaussian with its entropy terms.
* Two-hot regression bins: :func:`symexp_bins` (DreamerV3: 255 bins ``symexp(linspace(-20, 20))``
  with a symmetric expectation :func:`symmetric_expectation`) and :func:`symlog_bins` (TD-MPC2:
  101 bins ``linspace(-10, 10)`` in symlog space, decoded with ``symexp`` of the mean), with
  :func:`twohot_nll`, the cross-entropy gathered from two bins instead of a dense target. The
  dense encoding is :func:`worldflux.nn.functional.twohot`.

Axis legend: ``K`` classes or bins, ``A`` action size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from worldflux.nn.functional import symexp

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def unimix_logprobs(logits: Tensor, unimix: float) -> Tensor:
    """Log-probabilities of ``softmax(logits)`` mixed with ``unimix`` of the uniform distribution."""
    if not unimix:
        return torch.log_softmax(logits, -1)
    probs = torch.softmax(logits, -1)
    return torch.log((1.0 - unimix) * probs + unimix / logits.shape[-1])


def sample_onehot(logprobs: Tensor, mode: bool = False) -> Tensor:
    """One-hot sample (or mode) of ``logprobs (..., K)`` with straight-through gradients."""
    probs = logprobs.exp()
    if mode:
        index = probs.argmax(-1)
    else:
        flat = probs.detach().reshape(-1, probs.shape[-1])
        index = torch.multinomial(flat, 1).view(probs.shape[:-1])
    onehot = F.one_hot(index, probs.shape[-1]).to(probs.dtype)
    return onehot + probs - probs.detach()


class Categorical:
    """Categorical over one-hot actions, optionally mixed with ``unimix`` of the uniform."""

    def __init__(self, logits: Tensor, unimix: float = 0.0) -> None:
        # Mixed through exp(log_softmax) (not softmax) as recorded in the pinned numbers.
        self.logprobs = torch.log_softmax(logits, -1)
        if unimix:
            probs = (1 - unimix) * self.logprobs.exp() + unimix / logits.shape[-1]
            self.logprobs = probs.log()
        self.minent, self.maxent = 0.0, math.log(logits.shape[-1])

    def sample(self) -> Tensor:
        """A one-hot sample ``(..., K)`` (no gradient)."""
        flat = self.logprobs.detach().exp().reshape(-1, self.logprobs.shape[-1])
        index = torch.multinomial(flat, 1).view(self.logprobs.shape[:-1])
        return F.one_hot(index, self.logprobs.shape[-1]).to(self.logprobs.dtype)

    def mode(self) -> Tensor:
        """The most likely class, one-hot ``(..., K)``."""
        index = self.logprobs.argmax(-1)
        return F.one_hot(index, self.logprobs.shape[-1]).to(self.logprobs.dtype)

    def log_prob(self, action: Tensor) -> Tensor:
        """Log-probability ``(...)`` of one-hot ``action (..., K)``."""
        return (self.logprobs * action).sum(-1)

    def entropy(self) -> Tensor:
        """Entropy ``(...)``."""
        return -(self.logprobs.exp() * self.logprobs).sum(-1)


class BoundedNormal:
    """Diagonal normal whose std lies in ``[minstd, maxstd]``; log-probs summed over ``A``."""

    def __init__(self, mean: Tensor, std: Tensor, minstd: float, maxstd: float) -> None:
        self.mean, self.std = mean, std
        dims = mean.shape[-1]
        self.minent = dims * (0.5 * math.log(2 * math.pi * minstd**2) + 0.5)
        self.maxent = dims * (0.5 * math.log(2 * math.pi * maxstd**2) + 0.5)

    def sample(self) -> Tensor:
        """A sample ``(..., A)`` (no gradient)."""
        return (self.mean + self.std * torch.randn_like(self.mean)).detach()

    def mode(self) -> Tensor:
        """The mean ``(..., A)``."""
        return self.mean.detach()

    def log_prob(self, action: Tensor) -> Tensor:
        """Log-density ``(...)`` of ``action (..., A)``."""
        z = (action - self.mean) / self.std
        return (-0.5 * z**2 - self.std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self) -> Tensor:
        """Entropy ``(...)``."""
        return (0.5 * torch.log(2 * math.pi * self.std**2) + 0.5).sum(-1)


def squashed_gaussian_sample(
    mean: Tensor,
    log_std: Tensor,
    action_mask: Tensor | None = None,
    form: str = "scaled",
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Reparameterised sample of a tanh-squashed diagonal Gaussian (TD-MPC2's policy prior).

    Args:
        mean: pre-tanh mean ``(..., A)``.
        log_std: log standard deviation ``(..., A)``.
        action_mask: ``(..., A)`` 0/1 mask of the dimensions in use (multitask), or ``None``.
        form: ``"scaled"`` (TD-MPC2 @ e9f5932: the Gaussian log-likelihood scaled by the number
            of action dimensions) or ``"legacy"`` (the 2023 release @ b67b21c).
        generator: optional random generator.

    Returns:
        ``action`` in (-1, 1), ``mean`` (tanh of the mean), ``log_std``, ``entropy`` (minus the
        squashed log-probability, ``(...)``) and ``scaled_entropy`` (the entropy bonus).
    """
    eps = torch.randn(mean.shape, device=mean.device, dtype=mean.dtype, generator=generator)
    if action_mask is not None:
        mean, log_std, eps = mean * action_mask, log_std * action_mask, eps * action_mask
        size = action_mask.sum(-1)
    else:
        size = torch.full(mean.shape[:-1], mean.shape[-1], dtype=mean.dtype, device=mean.device)
    residual = (-0.5 * eps.pow(2) - log_std).sum(-1)
    action = torch.tanh(mean + eps * log_std.exp())
    squash_correction = torch.log(torch.relu(1 - action.pow(2)) + 1e-6).sum(-1)
    if form == "legacy":
        log_prob = (residual - _HALF_LOG_2PI) * size - squash_correction
        scaled_entropy = -log_prob
    else:
        gaussian = residual - _HALF_LOG_2PI * mean.shape[-1]
        log_prob = gaussian - squash_correction
        # As TD-MPC2: -log_prob * (size * gaussian / log_prob), i.e. the Gaussian
        # log-likelihood scaled by the number of action dimensions, computed through log_prob.
        scaled_entropy = -log_prob * (gaussian * size / (log_prob + 1e-8))
    return {
        "action": action,
        "mean": torch.tanh(mean),
        "log_std": log_std,
        "entropy": -log_prob,
        "scaled_entropy": scaled_entropy,
    }


def symexp_bins(num: int) -> Tensor:
    """DreamerV3's bins: ``symexp`` of ``num`` points evenly spaced in ``[-20, 20]``, built
    from one half and mirrored so that they are exactly symmetric around zero."""
    if num % 2 == 1:
        half = symexp(torch.linspace(-20.0, 0.0, (num - 1) // 2 + 1))
        return torch.cat([half, -half[:-1].flip(0)])
    half = symexp(torch.linspace(-20.0, 0.0, num // 2))
    return torch.cat([half, -half.flip(0)])


def symlog_bins(num: int, vmin: float = -10.0, vmax: float = 10.0) -> Tensor:
    """TD-MPC2's bins: ``num`` points evenly spaced in symlog space over ``[vmin, vmax]``."""
    return torch.linspace(vmin, vmax, num)


def symmetric_expectation(logits: Tensor, bins: Tensor) -> Tensor:
    """Expected bin value ``(...)`` of ``softmax(logits (..., K))``, summed from both ends toward
    the middle bin so that a uniform distribution over symmetric bins gives exactly zero."""
    probs = torch.softmax(logits, -1)
    k = logits.shape[-1]
    m = k // 2
    if k % 2:
        lo = (probs[..., :m] * bins[:m]).flip(-1)
        hi = probs[..., m + 1 :] * bins[m + 1 :]
        return (lo + hi).sum(-1) + probs[..., m] * bins[m]
    lo = (probs[..., :m] * bins[:m]).flip(-1)
    return (lo + probs[..., m:] * bins[m:]).sum(-1)


def twohot_nll(logprobs: Tensor, target: Tensor, bins: Tensor) -> Tensor:
    """Cross-entropy ``(...)`` of log-probabilities ``(..., K)`` with the two-hot code of
    ``target (...)`` over sorted ``bins``.

    Gathers the two weighted bins instead of forming the dense two-hot target; the result equals
    ``-(twohot(target, bins) * logprobs).sum(-1)``.
    """
    x = target.detach().float().contiguous()
    k = bins.numel()
    below = (torch.searchsorted(bins, x, right=True) - 1).clamp(0, k - 1)
    above = (below + 1).clamp(max=k - 1)
    lo, hi = bins[below], bins[above]
    same = above == below
    w_hi = torch.where(same, torch.zeros_like(x), ((x - lo) / (hi - lo)).clamp(0.0, 1.0))
    picked = torch.gather(logprobs, -1, torch.stack([below, above], -1))
    return -(picked[..., 0] * (1.0 - w_hi) + picked[..., 1] * w_hi)
