"""A running percentile range: the scale both DreamerV3 and TD-MPC2 divide their actor signal by.

Both track the 5th to 95th percentile range of a batch statistic with an exponential moving
average and never let the scale fall below a limit, so that the actor's loss does not depend on
the reward scale. They differ only in what the average smooths:

* ``smooth="bounds"`` (DreamerV3, danijar/dreamerv3 ``embodied/jax/utils.py`` ``Normalize`` with
  ``perc`` @ e3f0224): the low and high percentiles are averaged separately and the scale is
  ``max(limit, hi - lo)``; the offset is ``lo``.
* ``smooth="range"`` (TD-MPC2, nicklashansen/tdmpc2 ``common/scale.py`` ``RunningScale`` @
  e9f5932): the clipped range ``max(limit, P95 - P5)`` is averaged, starting from 1; the offset is
  0.

Percentiles are linearly interpolated between order statistics (``torch.quantile``'s default,
NumPy's ``linear``), over every element of the batch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from worldflux.errors import ConfigError

SMOOTHING = ("bounds", "range")


class PercentileScale(nn.Module):
    """EMA of a batch's percentile range (see the module docstring).

    Args:
        rate: fraction of the way the statistics move toward the batch's per update, in (0, 1].
        limit: smallest scale.
        low, high: the percentiles, ``0 <= low < high <= 100``.
        smooth: ``"bounds"`` (DreamerV3) or ``"range"`` (TD-MPC2).
    """

    def __init__(
        self,
        rate: float,
        *,
        limit: float = 1.0,
        low: float = 5.0,
        high: float = 95.0,
        smooth: str = "bounds",
    ) -> None:
        super().__init__()
        if smooth not in SMOOTHING:
            raise ConfigError(f"smooth must be one of {SMOOTHING}, got {smooth!r}")
        if not 0.0 < rate <= 1.0:
            raise ConfigError(f"percentile scale rate must be in (0, 1], got {rate}")
        if not 0.0 <= low < high <= 100.0:
            raise ConfigError(f"need 0 <= low < high <= 100 percentiles, got {low}, {high}")
        self.rate, self.limit, self.smooth = float(rate), float(limit), smooth
        self.q = (low / 100.0, high / 100.0)
        if smooth == "bounds":
            self.register_buffer("lo", torch.zeros(()))
            self.register_buffer("hi", torch.zeros(()))
        else:
            self.register_buffer("value", torch.ones(1))
            # kept in the state dict as TD-MPC2's checkpoints (ours and the official) hold it
            self.register_buffer("percentiles", torch.tensor([float(low), float(high)]))

    def batch_percentiles(self, x: Tensor) -> Tensor:
        """The low and high percentiles ``(2,)`` over every element of ``x``."""
        flat = x.detach().float().flatten()
        return torch.quantile(flat, torch.tensor(self.q, device=flat.device))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Move the statistics toward the percentiles of ``x`` by ``rate``."""
        lo, hi = self.batch_percentiles(x)
        if self.smooth == "bounds":
            self.lo.mul_(1 - self.rate).add_(self.rate * lo)
            self.hi.mul_(1 - self.rate).add_(self.rate * hi)
        else:
            self.value.lerp_(torch.clamp(hi - lo, min=self.limit).reshape(1), self.rate)

    def offset(self) -> Tensor:
        """What is subtracted before dividing by :meth:`scale` (0 for ``"range"``)."""
        if self.smooth == "bounds":
            return self.lo.clone()
        return torch.zeros_like(self.value[0])

    def scale(self) -> Tensor:
        """The current scale, at least ``limit``."""
        if self.smooth == "bounds":
            return torch.clamp(self.hi - self.lo, min=self.limit)
        return self.value[0].clone()

    def forward(self, x: Tensor, update: bool = False) -> tuple[Tensor, Tensor]:
        """Update with ``x`` when ``update``; return ``(offset, scale)``."""
        if update:
            self.update(x)
        return self.offset(), self.scale()
