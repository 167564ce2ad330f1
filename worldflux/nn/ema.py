"""Exponential moving averages of a module's parameters (slow critics, target networks).

DreamerV3's slow critic (danijar/dreamerv3 ``embodied/jax/utils.py`` ``SlowModel`` @ e3f0224)
moves toward the critic by ``rate`` every ``every`` updates; TD-MPC2's target Q-functions
(nicklashansen/tdmpc2 ``world_model.py`` ``soft_update_target_Q`` @ e9f5932) move by ``tau``
after every update. Both are ``target <- target + rate * (source - target)``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from worldflux.errors import ConfigError


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, rate: float) -> None:
    """``target <- rate * source + (1 - rate) * target`` over parameters (in place)."""
    for tp, sp in zip(target.parameters(), source.parameters()):
        tp.lerp_(sp, rate)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` without gradients, in eval mode (an EMA target's start)."""
    return copy.deepcopy(module).requires_grad_(False).train(False)


class EMA(nn.Module):
    """An EMA copy of ``source``, stepped with :meth:`update` after each optimiser step.

    The copy is registered as the submodule ``target`` (so it is saved with the owner's state
    dict); ``source`` is held without registering it, as the owner registers it already.

    Args:
        source: the trained module.
        rate: fraction of the way the copy moves toward ``source`` per step, in ``(0, 1]``.
        every: step the copy only on every ``every``-th call of :meth:`update`.
    """

    def __init__(self, source: nn.Module, rate: float, every: int = 1) -> None:
        super().__init__()
        if not 0.0 < rate <= 1.0:
            raise ConfigError(f"EMA rate must be in (0, 1], got {rate}")
        if every < 1:
            raise ConfigError(f"EMA every must be >= 1, got {every}")
        self.rate, self.every = float(rate), int(every)
        self.target = frozen_copy(source)
        self._source = [source]  # a list, so nn.Module does not register it twice
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def train(self, mode: bool = True) -> EMA:
        """The copy always stays in eval mode (no dropout in targets)."""
        super().train(mode)
        self.target.train(False)
        return self

    @torch.no_grad()
    def update(self) -> bool:
        """Count one update; step the copy when due. Returns whether it stepped."""
        due = int(self.count) % self.every == 0
        self.count += 1
        if due:
            ema_update(self.target, self._source[0], self.rate)
        return due

    def forward(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        """Call the EMA copy."""
        return self.target(*args, **kwargs)
