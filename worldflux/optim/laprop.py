"""LaProp-style optimiser with adaptive gradient clipping and linear warmup (DreamerV3's).

Facts from danijar/dreamerv3 ``dreamerv3/agent.py`` (``_make_opt``) and ``embodied/jax/opt.py``
@ e3f0224. Each update, per parameter tensor:

1. adaptive gradient clipping: ``g <- g / max(1, |g| / (agc * max(pmin, |p|)))`` (``pmin 1e-3``);
2. RMS scaling: ``nu <- beta2 nu + (1 - beta2) g^2``, ``u = g / (sqrt(nu / (1 - beta2^t)) + eps)``;
3. momentum on the scaled update (LaProp order): ``mu <- beta1 mu + (1 - beta1) u``,
   ``u = mu / (1 - beta1^t)``;
4. ``p <- p - lr_t u`` with ``lr_t = lr * min(1, (t - 1) / warmup)`` (the official schedule's
   count starts at 0, so the first update has learning rate 0 when warming up).

Defaults are the official ones: ``lr 4e-5, agc 0.3, eps 1e-20, beta1 0.9, beta2 0.999,
momentum True, warmup 1000``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from worldflux.errors import ConfigError


class LaProp(torch.optim.Optimizer):
    """RMS-normalised momentum SGD with adaptive gradient clipping (see the module docstring).

    Args:
        params: parameters or parameter groups.
        lr: peak learning rate.
        agc: adaptive clipping ratio (0 disables clipping).
        eps: added to the RMS denominator.
        beta1, beta2: decay of the momentum and of the squared-gradient average.
        momentum: apply momentum after RMS scaling (off: RMSProp with bias correction).
        warmup: steps of linear learning-rate warmup from 0 (0 disables warmup).
        pmin: lower bound of the parameter norm in the clipping threshold.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 4e-5,
        agc: float = 0.3,
        eps: float = 1e-20,
        beta1: float = 0.9,
        beta2: float = 0.999,
        momentum: bool = True,
        warmup: int = 1000,
        pmin: float = 1e-3,
    ) -> None:
        if lr < 0 or agc < 0 or eps < 0 or warmup < 0:
            raise ConfigError(
                f"LaProp needs lr, agc, eps, warmup >= 0; got {lr}, {agc}, {eps}, {warmup}"
            )
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ConfigError(f"LaProp betas must be in [0, 1), got {beta1}, {beta2}")
        defaults = dict(
            lr=lr,
            agc=agc,
            eps=eps,
            beta1=beta1,
            beta2=beta2,
            momentum=momentum,
            warmup=warmup,
            pmin=pmin,
        )
        super().__init__(params, defaults)

    def current_lr(self, group: dict[str, Any] | None = None) -> float:
        """The learning rate the next update uses."""
        group = group or self.param_groups[0]
        steps = self._steps(group)
        if group["warmup"]:
            return group["lr"] * min(1.0, steps / group["warmup"])
        return group["lr"]

    def _steps(self, group: dict[str, Any]) -> int:
        for p in group["params"]:
            if p in self.state and "step" in self.state[p]:
                return int(self.state[p]["step"])
        return 0

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr = self.current_lr(group)
            grads = [p.grad for p in params]
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["nu"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["momentum"]:
                        state["mu"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
            t = self.state[params[0]]["step"]
            if group["agc"]:
                grads = self._clip(params, grads, group["agc"], group["pmin"])
            nus = [self.state[p]["nu"] for p in params]
            b2, b1 = group["beta2"], group["beta1"]
            torch._foreach_mul_(nus, b2)
            torch._foreach_addcmul_(nus, grads, grads, value=1 - b2)
            denom = torch._foreach_div(nus, 1 - b2**t)
            torch._foreach_sqrt_(denom)
            torch._foreach_add_(denom, group["eps"])
            updates = torch._foreach_div(grads, denom)
            if group["momentum"]:
                mus = [self.state[p]["mu"] for p in params]
                torch._foreach_lerp_(mus, updates, 1 - b1)
                updates = torch._foreach_div(mus, 1 - b1**t)
            if lr:
                torch._foreach_add_(params, updates, alpha=-lr)
        return loss

    @staticmethod
    def _clip(params: list[Tensor], grads: list[Tensor], agc: float, pmin: float) -> list[Tensor]:
        gnorm = torch._foreach_norm(grads)
        pnorm = torch._foreach_norm(params)
        factors = [
            1.0 / torch.clamp(g / (agc * torch.clamp(pn, min=pmin)), min=1.0)
            for g, pn in zip(gnorm, pnorm)
        ]
        return list(torch._foreach_mul(grads, factors))
