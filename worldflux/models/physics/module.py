"""Physics: structured physical world models (HNN, PixelHNN, LNN, Symplectic ODE-Net).

Papers: Hamiltonian Neural Networks (Greydanus, Dzamba & Yosinski, NeurIPS 2019; reference
greydanus/hamiltonian-nn @ bcc3622, counts 41,200 and 831,970), Lagrangian Neural Networks
(Cranmer et al. 2020; MilesCranmer/lagrangian_nns @ 2fc26cb, 724,801 by arithmetic) and, for
control, Symplectic ODE-Net (Zhong, Dey & Chakraborty, ICLR 2020).

The state is physical: the observation itself (``(q, p)`` or ``(q, qd)``) for vector kinds, or
the autoencoder's latent ``(q, p)`` of two stacked frames for ``pixel_hnn``. A step integrates the
learned field over ``dt`` (``integrator``); actions enter only the controlled kind, as
generalised forces ``g(q) u``. Training regresses the finite time derivatives of consecutive
replayed states (see :mod:`worldflux.models.physics.losses`).

Axis legend: ``B`` batch, ``T`` time, ``H`` horizon, ``D`` state size ``2 Q``, ``A`` actions,
``P`` flattened pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from typing import Any

import torch
from torch import Tensor

from worldflux.core.model import LossOutput, WorldModel
from worldflux.core.protocols import Rollout
from worldflux.errors import ConfigError, ShapeError
from worldflux.models.physics import dynamics, losses
from worldflux.models.physics.config import PhysicsConfig
from worldflux.models.physics.networks import (
    MLP,
    Dissipation,
    InputMatrix,
    MLPAutoencoder,
    embed_angles,
    symplectic_matrix,
)


class Physics(WorldModel):
    """A learned physical system advanced by an integrator (kinds ``hnn``, ``pixel_hnn``, ``lnn``)."""

    config: PhysicsConfig
    config_class = PhysicsConfig
    capabilities = frozenset({"encode", "transition", "rollout", "loss"})
    fsdp_wrap_units = ()  # one unit: the Hamiltonian's autograd.grad runs inside the loss forward

    def __init__(self, config: Mapping[str, Any] | PhysicsConfig) -> None:
        super().__init__(config)
        c = self.config
        self.autoencoder: MLPAutoencoder | None = None
        self.input_matrix: InputMatrix | None = None
        self.dissipation: Dissipation | None = None
        d = self.state_dim
        e = d + d // 2 if c.angle_embed else d  # network input: (cos q, sin q, p) or (q, p)
        if c.kind == "pixel_hnn":
            self.autoencoder = MLPAutoencoder(
                math.prod(c.obs_shape), c.ae_hidden_dim, c.latent_dim, c.ae_nonlinearity
            )
        if c.kind == "lnn":
            # the reference's dense stack: softplus, a bias on every layer, one output (L)
            out = d if c.baseline else 1
            self.field_net = MLP(d, c.hidden_dim, out, c.num_hidden, c.nonlinearity, True)
            if c.init == "lnn" and not c.baseline:  # the baseline keeps the MLP's own init
                self.field_net.lnn_init_()
        elif c.kind == "controlled":
            inp = e + c.action_dim if c.baseline else e
            self.field_net = MLP(inp, c.hidden_dim, d if c.baseline else 1, c.num_hidden,
                                 c.nonlinearity)  # fmt: skip
            if not c.baseline:
                self.input_matrix = InputMatrix(
                    d // 2, c.action_dim, c.hidden_dim, c.nonlinearity, c.angle_embed
                )
                if c.dissipation:
                    self.dissipation = Dissipation(
                        d // 2, c.hidden_dim, c.nonlinearity, c.angle_embed
                    )
        else:
            # HNN: two outputs (F1 conservative, F2 solenoidal) as in hamiltonian-nn's train.py
            out = d if c.baseline else 2
            self.field_net = MLP(e, c.hidden_dim, out, c.num_hidden, c.nonlinearity)

    # ------------------------------------------------------------------ shapes and checks
    @property
    def state_dim(self) -> int:
        """Size ``D`` of the physical state (observation size, or the latent size for pixels)."""
        c = self.config
        return c.latent_dim if c.kind == "pixel_hnn" else int(c.obs_shape[0])

    def _param_device(self) -> torch.device:
        return self.field_net.linear1.weight.device

    def check_state(self, x: Any, where: str = "state") -> Tensor:
        """``x`` as a float tensor ``(..., D)``; wrong size or non-finite values are errors."""
        x = torch.as_tensor(x, device=self._param_device()).float()
        if x.dim() < 1 or x.shape[-1] != self.state_dim:
            raise ShapeError(
                f"{where} must have last dimension D={self.state_dim} (q and p), got shape "
                f"{tuple(x.shape)}"
            )
        if not torch.isfinite(x).all():
            raise ShapeError(f"{where} must be finite, got NaN or infinite values")
        return x

    def _check_action(self, action: Any, lead: tuple[int, ...]) -> Tensor:
        a = torch.as_tensor(action, device=self._param_device()).float()
        if tuple(a.shape) != (*lead, self.config.action_dim):
            raise ShapeError(
                f"actions must have shape {(*lead, self.config.action_dim)}, got {tuple(a.shape)}"
            )
        if not torch.isfinite(a).all():
            raise ShapeError("actions must be finite, got NaN or infinite values")
        return a

    # ------------------------------------------------------------------ the field
    def energy_net(self, x: Tensor) -> Tensor:
        """The field network at states ``x (N, D)``, through the angle embedding if configured."""
        return self.field_net(embed_angles(x, x.shape[-1] // 2) if self.config.angle_embed else x)

    def time_derivative(self, x: Tensor, action: Tensor | None = None) -> Tensor:
        """``dx/dt (N, D)`` of states ``x (N, D)`` (``action (N, A)`` for the controlled kind)."""
        c = self.config
        if c.baseline:
            inp = embed_angles(x, x.shape[-1] // 2) if c.angle_embed else x
            if c.kind == "lnn" and c.angle_wrap:  # the reference's baseline_eom wraps q too
                q_dim = x.shape[-1] // 2
                inp = torch.cat([dynamics.wrap_angles(x[:, :q_dim]), x[:, q_dim:]], -1)
            if c.kind == "controlled":
                inp = torch.cat([inp, self._force(action, x)], -1)
            return self.field_net(inp)
        if c.kind == "lnn":
            return dynamics.lagrangian_field(self.field_net, x, c.angle_wrap)
        if c.kind == "controlled":
            assert self.input_matrix is not None
            return dynamics.controlled_field(
                self.energy_net, x, self._force(action, x), self.input_matrix, self.dissipation
            )
        m = symplectic_matrix(x.shape[-1]).to(x)
        return dynamics.hamiltonian_field(self.energy_net, x, m, c.field_type)

    def lagrangian_field_and_mass(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The LNN's field ``(N, D)`` and learned mass matrix ``d2L/dqd2`` ``(N, Q, Q)`` at ``x``."""
        c = self.config
        if c.kind != "lnn" or c.baseline:
            raise ConfigError(f"a mass matrix needs kind 'lnn' without baseline, got {c.kind!r}")
        return dynamics.lagrangian_field(self.field_net, x, c.angle_wrap, return_mass=True)

    def _force(self, action: Tensor | None, x: Tensor) -> Tensor:
        if action is None:
            return x.new_zeros(x.shape[0], self.config.action_dim)
        return action

    def integrate(
        self, x: Tensor, action: Tensor | None = None, integrator: str | None = None
    ) -> Tensor:
        """One step of ``dt`` from ``x (N, D)``; the action is held constant over the step."""
        c = self.config
        return dynamics.step(
            partial(self.time_derivative, action=action), x, c.dt, integrator or c.integrator
        )

    # ------------------------------------------------------------------ the contract
    def encode(self, obs: Any) -> Tensor:
        """Physical states ``(..., D)`` of observations (the latent for pixel observations)."""
        if self.autoencoder is None:
            return self.check_state(obs, "observation")
        x = torch.as_tensor(obs, device=self._param_device())
        shape = tuple(self.config.obs_shape)
        if tuple(x.shape[-len(shape) :]) != shape:
            raise ShapeError(f"observations must end in {shape}, got shape {tuple(x.shape)}")
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if not torch.isfinite(x).all():
            raise ShapeError("observations must be finite, got NaN or infinite values")
        lead = x.shape[: -len(shape)]
        return self.autoencoder.encode(x.reshape(-1, math.prod(shape))).view(*lead, -1)

    def transition(self, state: Tensor, action: Tensor) -> Tensor:
        """The state ``(B, D)`` one ``dt`` after ``state`` under ``action (B, A)``."""
        x = self.check_state(state)
        a = self._check_action(action, tuple(x.shape[:-1]))
        return self.integrate(x.reshape(-1, x.shape[-1]), a.reshape(-1, a.shape[-1])).view_as(x)

    def rollout(self, state: Tensor, actions: Tensor) -> Rollout:
        """States ``(B, H, D)`` after each of ``actions (B, H, A)`` from ``state (B, D)``."""
        x = self.check_state(state)
        if x.dim() != 2:
            raise ShapeError(f"state must be (B, D), got shape {tuple(x.shape)}")
        a = torch.as_tensor(actions, device=x.device)
        if a.dim() != 3:
            raise ShapeError(f"actions must be (B, H, A), got shape {tuple(a.shape)}")
        a = self._check_action(a, (x.shape[0], a.shape[1]))
        out = []
        for t in range(a.shape[1]):
            x = self.integrate(x, a[:, t])
            out.append(x)
        return Rollout(states=torch.stack(out, 1), actions=a)

    def decode(self, state: Tensor) -> dict[str, Tensor]:
        """Observations of states (pixels through the decoder; states are observations otherwise)."""
        x = self.check_state(state)
        if self.autoencoder is None:
            return {"obs": x}
        pixels = self.autoencoder.decode(x.reshape(-1, x.shape[-1]))
        return {"obs": pixels.view(*x.shape[:-1], *self.config.obs_shape)}

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """The family's loss on a replay batch (see :mod:`worldflux.models.physics.losses`)."""
        return self.phase_loss("model", batch, {})

    def phase_loss(
        self, name: str, batch: Mapping[str, Any], outputs: Mapping[str, LossOutput]
    ) -> LossOutput:
        """The one ``model`` phase (``conf/model/physics/base.yaml``)."""
        if self.autoencoder is not None:
            return losses.pixel_hnn_loss(self, batch)
        return losses.derivative_loss(self, batch)


class ControlledPhysics(Physics):
    """Symplectic ODE-Net with an MPPI planner (kind ``controlled``): acts by planning."""

    capabilities = Physics.capabilities | {"act", "plan"}

    def __init__(self, config: Mapping[str, Any] | PhysicsConfig) -> None:
        super().__init__(config)
        from worldflux.planning.mppi import MPPIPlanner

        c = self.config
        self.planner = MPPIPlanner(
            c.action_dim, c.horizon, c.iterations, c.num_samples, c.num_elites, 0,
            c.min_std, c.max_std, c.temperature,
        )  # fmt: skip

    # ------------------------------------------------------------------ planner interface
    def plan_next(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        """One integrator step of flat states ``z (N, D)`` under ``action (N, A)``."""
        return self.integrate(z, action)

    def plan_reward(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        """The swing-up task reward ``(N,)`` of being in ``z`` and applying ``action``."""
        c = self.config
        q, p = z[:, : z.shape[1] // 2], z[:, z.shape[1] // 2 :]
        err = torch.remainder(q - c.target_angle + math.pi, 2 * math.pi) - math.pi
        cost = c.angle_cost * err.pow(2).sum(-1) + c.velocity_cost * p.pow(2).sum(-1)
        return -(cost + c.action_cost * action.pow(2).sum(-1))

    def plan_value(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        """Terminal value ``(N,)``: the last state's reward weighted ``terminal_weight``."""
        return self.config.terminal_weight * self.plan_reward(z, torch.zeros_like(action), task)

    def act(
        self,
        obs: Any,
        state: Any = None,
        *,
        first: Tensor | None = None,
        eval_mode: bool = False,
        task: Any = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Actions ``(B, A)`` by MPPI through the learned dynamics; the state is the warm start."""
        z = self.encode(obs)
        if z.dim() != 2:
            raise ShapeError(f"obs must be (B, D), got shape {tuple(z.shape)}")
        b, c = z.shape[0], self.config
        prev = None if state is None else state["plan"].to(z)
        if prev is not None and first is not None:
            prev = prev * (~torch.as_tensor(first, device=z.device).view(b, 1, 1)).to(z)
        result = self.planner.plan(self, z, prev_mean=prev, discount=1.0, eval_mode=eval_mode)
        if result.mean.shape != (b, c.horizon, c.action_dim):
            raise ShapeError(f"planner returned a plan of shape {tuple(result.mean.shape)}")
        return result.action, {"plan": result.mean}
