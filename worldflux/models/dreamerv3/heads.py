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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.errors import ConfigError
from worldflux.nn.distributions import (
    BoundedNormal,
    Categorical,
    symexp_bins,
    symmetric_expectation,
    twohot_nll,
)
from worldflux.nn.layers import MLP, Linear

__all__ = ["BinaryHead", "BoundedNormal", "Categorical", "PolicyHead", "TwoHotHead", "symexp_bins"]


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
        return symmetric_expectation(logits, self.bins)

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy ``(...)`` with the two-hot encoding of ``target (...)``."""
        return self.nll(torch.log_softmax(logits, -1), target)

    def nll(self, logprobs: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy ``(...)`` of log-probabilities ``(..., K)`` with ``twohot(target)``."""
        return twohot_nll(logprobs, target, self.bins)


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
