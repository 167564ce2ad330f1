"""Losses of the physics family: derivative regression on replayed states.

The references regress exact time derivatives (hamiltonian-nn @ bcc3622: L2 between the field and
``dx/dt`` of the true dynamics; lagrangian_nns @ 2fc26cb: L1 on the analytical accelerations).
``derivative_target: exact`` does the same: the field at ``x[t]`` against the environment's exact
``dx/dt`` stored with each replayed state (``batch["state_dot"]``, recorded by the embedded
physics systems). Data without derivatives use finite differences of consecutive states
(``forward``): the model integrates ``rollout_steps`` steps of ``dt`` with ``loss_integrator`` and
the error is ``(x_hat[t+k] - x[t+k]) / dt``. With one ``euler`` step this is
``f(x[t]) - (x[t+1] - x[t]) / dt``, the derivative regression on a first-order target; more steps
train by differentiating through the integrator (Symplectic ODE-Net). Pairs that straddle an
episode start are masked out. ``central`` (ours, unforced kinds) regresses the field at ``x[t]``
on ``(x[t+1] - x[t-1]) / (2 dt)``, second order in ``dt``.

PixelHNN (hamiltonian-nn ``experiment-pixels/train.py``): reconstruction + canonical-coordinate
loss (the latent momentum equals the latent position's change per frame) + 0.1 x the HNN loss on
the next latent.

Axis legend: ``B`` batch, ``T`` time, ``K`` rollout steps, ``N`` flat pairs, ``D`` state size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from worldflux.core.model import LossOutput
from worldflux.errors import ConfigError, ShapeError

if TYPE_CHECKING:
    from worldflux.models.physics.module import Physics


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values (N, ...)`` over the rows where ``mask (N,)`` holds (0 if none)."""
    per_row = values.reshape(values.shape[0], -1).mean(1)
    weight = mask.to(per_row)
    return (per_row * weight).sum() / weight.sum().clamp_min(1.0)


def _pointwise(err: Tensor, loss: str, cap: float | None) -> Tensor:
    """``|err|`` (l1) or ``err^2`` (l2), truncated at ``cap`` (l2: ``cap^2``) if one is set.

    A truncated element keeps its value but gives no gradient: a state where the learned LNN mass
    matrix is near-singular predicts accelerations thousands of times the data's, and its
    gradient would otherwise swamp the batch (docs/learning.md, physics).
    """
    value = err.abs() if loss == "l1" else err.pow(2)
    if cap is None:
        return value
    return value.clamp(max=cap if loss == "l1" else cap * cap)


def _flags(batch: Mapping[str, Any], b: int, t: int, device: torch.device) -> Tensor:
    first = batch.get("first")
    if first is None:
        return torch.zeros(b, t, dtype=torch.bool, device=device)
    first = torch.as_tensor(first, device=device).bool()
    if tuple(first.shape) != (b, t):
        raise ShapeError(f"batch['first'] must be (B, T) = {(b, t)}, got {tuple(first.shape)}")
    return first


def derivative_loss(model: Physics, batch: Mapping[str, Any]) -> LossOutput:
    """Regression of the field on exact or finite time derivatives (``derivative_target``)."""
    c = model.config
    x = model.encode(batch["obs"])
    if x.dim() != 3:
        raise ShapeError(f"batch['obs'] must be (B, T, D), got shape {tuple(x.shape)}")
    b, t, d = x.shape
    k_steps = c.rollout_steps
    if t < k_steps + 1:
        raise ShapeError(f"the loss needs T >= rollout_steps + 1 = {k_steps + 1} steps, got T={t}")
    action = model._check_action(batch["action"], (b, t))
    first = _flags(batch, b, t, x.device)
    if c.derivative_target == "exact":
        return _exact_loss(model, x, batch)
    if c.derivative_target == "central":
        return _central_loss(model, x, first)
    n = t - k_steps  # start positions per sequence
    xhat = x[:, :n].reshape(-1, d)
    valid = torch.ones(b * n, dtype=torch.bool, device=x.device)
    terms = []
    for k in range(1, k_steps + 1):
        # action[t] is the force that led to x[t] (the batch format), so x[t+k] follows action[t+k]
        xhat = model.integrate(xhat, action[:, k : n + k].reshape(-1, c.action_dim),
                               c.loss_integrator)  # fmt: skip
        valid = valid & ~first[:, k : n + k].reshape(-1)
        err = (xhat - x[:, k : n + k].reshape(-1, d)) / c.dt
        terms.append(_masked_mean(_pointwise(err, c.loss, c.loss_cap), valid))
    total = torch.stack(terms).mean()
    return LossOutput(total, {"derivative": total})


def _exact_loss(model: Physics, x: Tensor, batch: Mapping[str, Any]) -> LossOutput:
    """The field at every ``x[t]`` against the exact ``dx/dt`` there (``batch["state_dot"]``)."""
    c = model.config
    if batch.get("state_dot") is None:
        raise ConfigError(
            "derivative_target 'exact' needs the exact time derivative of each state in the "
            "batch ('state_dot'); the embedded physics systems record it with "
            "env.record_derivative=true, other data need derivative_target 'forward' or 'central'"
        )
    target = torch.as_tensor(batch["state_dot"], device=x.device).float()
    if tuple(target.shape) != tuple(x.shape):
        raise ShapeError(
            f"batch['state_dot'] must have the states' shape {tuple(x.shape)}, got "
            f"{tuple(target.shape)}"
        )
    if not torch.isfinite(target).all():
        raise ShapeError("batch['state_dot'] must be finite, got NaN or infinite values")
    d = x.shape[-1]
    flat = x.reshape(-1, d)
    if c.definite_mass_coef > 0:  # ours (config.py): hinge on the learned mass matrix
        field, mass = model.lagrangian_field_and_mass(flat)
        lowest = torch.linalg.eigvalsh(mass)[:, 0]
        hinge = c.definite_mass_coef * torch.relu(c.definite_mass_margin - lowest).mean()
    else:
        field, hinge = model.time_derivative(flat), None
    derivative = _pointwise(field - target.reshape(-1, d), c.loss, c.loss_cap).mean()
    if hinge is None:
        return LossOutput(derivative, {"derivative": derivative})
    return LossOutput(derivative + hinge, {"derivative": derivative, "definite_mass": hinge})


def _central_loss(model: Physics, x: Tensor, first: Tensor) -> LossOutput:
    """The field at ``x[t]`` against the central difference ``(x[t+1] - x[t-1]) / (2 dt)``."""
    c = model.config
    b, t, d = x.shape
    if t < 3:
        raise ShapeError(f"derivative_target 'central' needs T >= 3 steps, got T={t}")
    field = model.time_derivative(x[:, 1:-1].reshape(-1, d))
    target = ((x[:, 2:] - x[:, :-2]) / (2 * c.dt)).reshape(-1, d)
    valid = ~(first[:, 1:-1] | first[:, 2:]).reshape(-1)  # x[t-1], x[t], x[t+1] in one episode
    err = field - target
    total = _masked_mean(_pointwise(err, c.loss, c.loss_cap), valid)
    return LossOutput(total, {"derivative": total})


def pixel_hnn_loss(model: Physics, batch: Mapping[str, Any]) -> LossOutput:
    """PixelHNN: reconstruction + canonical coordinates + ``hnn_coef`` x next-latent HNN loss."""
    c = model.config
    assert model.autoencoder is not None
    obs = torch.as_tensor(batch["obs"], device=model._param_device())
    shape = tuple(c.obs_shape)
    if obs.dim() != 2 + len(shape) or tuple(obs.shape[2:]) != shape:
        raise ShapeError(f"batch['obs'] must be (B, T, *{shape}), got shape {tuple(obs.shape)}")
    b, t = obs.shape[:2]
    if t < 2:
        raise ShapeError(f"the PixelHNN loss needs T >= 2 consecutive frames, got T={t}")
    pixels = obs.float() / 255.0 if obs.dtype == torch.uint8 else obs.float()
    flat = pixels.reshape(b, t, math.prod(shape))
    x, x_next = flat[:, :-1].reshape(-1, flat.shape[-1]), flat[:, 1:].reshape(-1, flat.shape[-1])
    valid = ~_flags(batch, b, t, obs.device)[:, 1:].reshape(-1)
    z, z_next = model.autoencoder.encode(x), model.autoencoder.encode(x_next)
    ae = (x - model.autoencoder.decode(z)).pow(2)
    hnn = (z_next - model.integrate(z, None, c.loss_integrator)).pow(2)
    half = c.latent_dim // 2
    cc = (z[:, half:] - (z_next[:, :half] - z[:, :half])).pow(2)
    parts = {
        "reconstruction": c.recon_coef * _masked_mean(ae, valid),
        "canonical": c.cc_coef * _masked_mean(cc, valid),
        "hnn": c.hnn_coef * _masked_mean(hnn, valid),
    }
    return LossOutput(sum(parts.values(), torch.zeros((), device=z.device)), parts)
