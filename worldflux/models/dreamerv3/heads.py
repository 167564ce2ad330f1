"""DreamerV3's prediction heads: reward and value (two-hot), continue (binary), policy.

Facts from danijar/dreamerv3 ``embodied/jax/heads.py`` and ``outs.py`` @ e3f0224: every head is an
MLP of ``layers`` x ``units`` (dense, RMSNorm, SiLU) followed by an output layer whose initial
weights are multiplied by ``outscale``. Two-hot heads use ``bins`` logits over bin centres
``symexp(linspace(-20, 20, bins))`` and interpolate targets linearly between neighbouring
centres; the prediction is the probability-weighted sum of centres, summed symmetrically so that
a uniform distribution predicts exactly zero. The policy is a categorical for discrete actions
and a normal with ``tanh`` mean and ``std = (maxstd - minstd) * sigmoid(x + 2) + minstd`` for
continuous ones (no squashing of samples).

Axis legend: ``N`` flattened batch, ``F`` feature size, ``K`` bins, ``A`` action size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.errors import ConfigError
from worldflux.models.dreamerv3.layers import MLP, Linear
from worldflux.nn.functional import symexp


def symexp_bins(num: int) -> Tensor:
    """The official bin centres: ``symexp`` of ``num`` points evenly spaced in ``[-20, 20]``."""
    if num % 2 == 1:
        half = symexp(torch.linspace(-20.0, 0.0, (num - 1) // 2 + 1))
        return torch.cat([half, -half[:-1].flip(0)])
    half = symexp(torch.linspace(-20.0, 0.0, num // 2))
    return torch.cat([half, -half.flip(0)])


class TwoHotHead(nn.Module):
    """Scalar regression by two-hot classification over ``symexp`` bins (reward and value)."""

    bins: Tensor

    def __init__(
        self,
        in_dim: int,
        units: int,
        layers: int = 1,
        bins: int = 255,
        outscale: float = 0.0,
        act: str = "silu",
        norm: str = "rms",
    ) -> None:
        super().__init__()
        self.mlp = MLP(in_dim, layers, units, norm, act)
        self.out = Linear(self.mlp.out_dim if layers else in_dim, bins, outscale)
        self.register_buffer("bins", symexp_bins(bins), persistent=False)

    def forward(self, feat: Tensor) -> Tensor:
        """Logits ``(..., K)``."""
        return self.out(self.mlp(feat))

    def pred(self, logits: Tensor) -> Tensor:
        """Expected value ``(...)``, summed from both ends toward the middle bin."""
        probs = torch.softmax(logits, -1)
        k = logits.shape[-1]
        m = k // 2
        if k % 2:
            lo = (probs[..., :m] * self.bins[:m]).flip(-1)
            hi = probs[..., m + 1 :] * self.bins[m + 1 :]
            return (lo + hi).sum(-1) + probs[..., m] * self.bins[m]
        lo = (probs[..., :m] * self.bins[:m]).flip(-1)
        return (lo + probs[..., m:] * self.bins[m:]).sum(-1)

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy ``(...)`` with the two-hot encoding of ``target (...)``."""
        return self.nll(torch.log_softmax(logits, -1), target)

    def nll(self, logprobs: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy ``(...)`` of log-probabilities ``(..., K)`` with ``twohot(target)``.

        Gathers the two weighted bins instead of forming the dense two-hot target; the result
        equals ``-(twohot(target, bins) * logprobs).sum(-1)``.
        """
        x = target.detach().float().contiguous()
        k = self.bins.numel()
        below = (torch.searchsorted(self.bins, x, right=True) - 1).clamp(0, k - 1)
        above = (below + 1).clamp(max=k - 1)
        lo, hi = self.bins[below], self.bins[above]
        same = above == below
        w_hi = torch.where(same, torch.zeros_like(x), ((x - lo) / (hi - lo)).clamp(0.0, 1.0))
        picked = torch.gather(logprobs, -1, torch.stack([below, above], -1))
        return -(picked[..., 0] * (1.0 - w_hi) + picked[..., 1] * w_hi)


class BinaryHead(nn.Module):
    """Bernoulli head (episode continuation); targets may be soft."""

    def __init__(
        self,
        in_dim: int,
        units: int,
        layers: int = 1,
        outscale: float = 1.0,
        act: str = "silu",
        norm: str = "rms",
    ) -> None:
        super().__init__()
        self.mlp = MLP(in_dim, layers, units, norm, act)
        self.out = Linear(self.mlp.out_dim if layers else in_dim, 1, outscale)

    def forward(self, feat: Tensor) -> Tensor:
        """Logits ``(...)``."""
        return self.out(self.mlp(feat)).squeeze(-1)

    def prob(self, logits: Tensor) -> Tensor:
        """Probability of 1."""
        return torch.sigmoid(logits)

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Negative log-likelihood ``(...)`` of the (soft) target."""
        return F.binary_cross_entropy_with_logits(logits, target.float(), reduction="none")


class Categorical:
    """Categorical over one-hot actions, optionally mixed with ``unimix`` of the uniform."""

    def __init__(self, logits: Tensor, unimix: float = 0.0) -> None:
        self.logprobs = torch.log_softmax(logits, -1)
        if unimix:
            probs = (1 - unimix) * self.logprobs.exp() + unimix / logits.shape[-1]
            self.logprobs = probs.log()
        self.minent, self.maxent = 0.0, math.log(logits.shape[-1])

    def sample(self) -> Tensor:
        flat = self.logprobs.detach().exp().reshape(-1, self.logprobs.shape[-1])
        index = torch.multinomial(flat, 1).view(self.logprobs.shape[:-1])
        return F.one_hot(index, self.logprobs.shape[-1]).to(self.logprobs.dtype)

    def mode(self) -> Tensor:
        index = self.logprobs.argmax(-1)
        return F.one_hot(index, self.logprobs.shape[-1]).to(self.logprobs.dtype)

    def log_prob(self, action: Tensor) -> Tensor:
        return (self.logprobs * action).sum(-1)

    def entropy(self) -> Tensor:
        return -(self.logprobs.exp() * self.logprobs).sum(-1)


class BoundedNormal:
    """Diagonal normal with a ``tanh`` mean and a bounded std; log-probs summed over ``A``."""

    def __init__(self, mean: Tensor, std: Tensor, minstd: float, maxstd: float) -> None:
        self.mean, self.std = mean, std
        dims = mean.shape[-1]
        self.minent = dims * (0.5 * math.log(2 * math.pi * minstd**2) + 0.5)
        self.maxent = dims * (0.5 * math.log(2 * math.pi * maxstd**2) + 0.5)

    def sample(self) -> Tensor:
        return (self.mean + self.std * torch.randn_like(self.mean)).detach()

    def mode(self) -> Tensor:
        return self.mean.detach()

    def log_prob(self, action: Tensor) -> Tensor:
        z = (action - self.mean) / self.std
        return (-0.5 * z**2 - self.std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self) -> Tensor:
        return (0.5 * torch.log(2 * math.pi * self.std**2) + 0.5).sum(-1)


class PolicyHead(nn.Module):
    """The actor: categorical (discrete) or bounded normal (continuous) over ``action_dim``."""

    def __init__(
        self,
        in_dim: int,
        units: int,
        action_dim: int,
        action_kind: str,
        layers: int = 3,
        minstd: float = 0.1,
        maxstd: float = 1.0,
        unimix: float = 0.01,
        outscale: float = 0.01,
        act: str = "silu",
        norm: str = "rms",
    ) -> None:
        super().__init__()
        if action_kind not in ("discrete", "continuous"):
            raise ConfigError(
                f"action_kind must be 'discrete' or 'continuous', got {action_kind!r}"
            )
        self.discrete = action_kind == "discrete"
        self.minstd, self.maxstd, self.unimix = minstd, maxstd, unimix
        self.mlp = MLP(in_dim, layers, units, norm, act)
        hid = self.mlp.out_dim if layers else in_dim
        if self.discrete:
            self.logits = Linear(hid, action_dim, outscale)
        else:
            self.mean = Linear(hid, action_dim, outscale)
            self.stddev = Linear(hid, action_dim, outscale)

    def forward(self, feat: Tensor) -> Categorical | BoundedNormal:
        """The action distribution at ``feat (..., F)``."""
        x = self.mlp(feat)
        if self.discrete:
            return Categorical(self.logits(x), self.unimix)
        lo, hi = self.minstd, self.maxstd
        std = (hi - lo) * torch.sigmoid(self.stddev(x) + 2.0) + lo
        return BoundedNormal(torch.tanh(self.mean(x)), std, lo, hi)
