"""Time derivatives of the learned physical systems and the integrators that advance them.

Fields (each maps a state ``x (N, D)``, ``D = 2 Q``, and an optional force ``u (N, A)`` to
``dx/dt (N, D)``):

- Hamiltonian (HNN, Greydanus et al. 2019, hamiltonian-nn @ bcc3622 ``hnn.py``): the network
  outputs ``(F1, F2)``; the solenoidal part ``dF2/dx @ M.T`` is the symplectic gradient
  ``(dH/dp, -dH/dq)`` and the optional conservative part is ``dF1/dx``.
- Lagrangian (LNN, Cranmer et al. 2020, lagrangian_nns @ 2fc26cb ``lnn.py``): for ``x = (q, qd)``,
  ``qdd = pinv(d2L/dqd2) (dL/dq - d2L/(dqd dq) qd)`` by ``torch.func`` (one ``jacfwd`` of the
  gradient along ``qd`` gives both second-derivative blocks; the reference's network sees angles
  wrapped to ``[-pi, pi)`` (``utils.wrap_coords``), here behind ``angle_wrap``).
- Controlled Hamiltonian (Symplectic ODE-Net, Zhong et al. 2020): ``dq = dH/dp``,
  ``dp = -dH/dq + g(q) u - D(q) dH/dp`` with a learned input matrix ``g`` and optional damping ``D``.

Integrators: ``euler``, ``semi_implicit_euler`` (momentum first, then positions with the new
momentum), ``leapfrog`` (half kick, drift, half kick) and ``rk4``. The two symplectic ones are
exactly symplectic for separable Hamiltonians.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from worldflux.errors import ConfigError

INTEGRATORS = ("euler", "semi_implicit_euler", "leapfrog", "rk4")
FIELD_TYPES = ("solenoidal", "conservative", "both")

Field = Callable[[Tensor], Tensor]


def _grad(out: Tensor, x: Tensor, create_graph: bool) -> Tensor:
    return torch.autograd.grad(out.sum(), x, create_graph=create_graph)[0]


def hamiltonian_field(
    net: Callable[[Tensor], Tensor], x: Tensor, m: Tensor, field_type: str = "solenoidal"
) -> Tensor:
    """The HNN vector field ``(N, D)`` of the two-output network ``net`` at ``x (N, D)``.

    Works under ``torch.no_grad`` too (planning): the input gradient is always taken, the graph
    through it only kept when gradients are enabled by the caller.
    """
    keep = torch.is_grad_enabled()
    with torch.enable_grad():
        xg = x if x.requires_grad else x.detach().requires_grad_(True)
        y = net(xg)
        out = torch.zeros_like(xg)
        if field_type != "solenoidal":
            out = out + _grad(y[:, 0], xg, keep)
        if field_type != "conservative":
            out = out + _grad(y[:, 1], xg, keep) @ m.t()
    return out if keep else out.detach()


def controlled_field(
    energy: Callable[[Tensor], Tensor],
    x: Tensor,
    u: Tensor,
    input_matrix: Callable[[Tensor], Tensor],
    dissipation: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Symplectic ODE-Net field ``(N, D)``: Hamiltonian flow plus ``g(q) u`` minus damping."""
    keep = torch.is_grad_enabled()
    with torch.enable_grad():
        xg = x if x.requires_grad else x.detach().requires_grad_(True)
        dh = _grad(energy(xg)[:, 0], xg, keep)
        q_dim = x.shape[-1] // 2
        dh_dq, dh_dp = dh[:, :q_dim], dh[:, q_dim:]
        q = xg[:, :q_dim]
        dp = -dh_dq + (input_matrix(q) @ u.unsqueeze(-1)).squeeze(-1)
        if dissipation is not None:
            dp = dp - (dissipation(q) @ dh_dp.unsqueeze(-1)).squeeze(-1)
        out = torch.cat([dh_dp, dp], -1)
    return out if keep else out.detach()


def wrap_angles(q: Tensor) -> Tensor:
    """Angles ``q`` wrapped to ``[-pi, pi)`` (lagrangian_nns ``utils.wrap_coords``)."""
    return torch.remainder(q + torch.pi, 2 * torch.pi) - torch.pi


def lagrangian_field(
    lagrangian: Callable[[Tensor], Tensor], x: Tensor, angle_wrap: bool = False,
    return_mass: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:  # fmt: skip
    """The LNN field ``(N, D) = (qd, qdd)`` of the scalar network ``lagrangian`` at ``x``.

    Euler-Lagrange: ``d/dt dL/dqd = dL/dq`` gives
    ``qdd = H^+ (dL/dq - (d2L/dqd dq) qd)`` with ``H = d2L/dqd2``. Both second-derivative blocks
    are columns of the Hessian along the velocity directions, so one forward-mode Jacobian of
    ``grad L`` with respect to ``qd`` (``Q`` tangents, not ``D``) gives them, and its auxiliary
    output the gradient ``dL/dq``. With ``return_mass`` also the learned mass matrix
    ``H = d2L/dqd2`` ``(N, Q, Q)``.
    """
    from torch.func import grad, jacfwd, vmap

    q_dim = x.shape[-1] // 2
    q, qd = x[:, :q_dim], x[:, q_dim:]
    if angle_wrap:  # the network sees angles in [-pi, pi) (the pendulum hangs at q = 0)
        q = wrap_angles(q)

    def lag(xi: Tensor) -> Tensor:
        return lagrangian(xi[None])[0, 0]

    def grad_in_qd(qd_i: Tensor, q_i: Tensor) -> tuple[Tensor, Tensor]:
        g = grad(lag)(torch.cat([q_i, qd_i]))
        return g, g

    # jac[n, i, j] = d(dL/dx_i)/dqd_j: rows q_dim: are H, rows :q_dim the mixed block transposed
    jac, dl = vmap(jacfwd(grad_in_qd, has_aux=True))(qd, q)  # (N, D, Q), (N, D)
    h = jac[:, q_dim:]  # [i, j] = d2L/dqd_i dqd_j
    mixed = jac[:, :q_dim].transpose(1, 2)  # [i, j] = d2L/dqd_i dq_j
    rhs = dl[:, :q_dim] - (mixed @ qd.unsqueeze(-1)).squeeze(-1)
    qdd = (torch.linalg.pinv(h) @ rhs.unsqueeze(-1)).squeeze(-1)
    field = torch.cat([x[:, q_dim:], qdd], -1)
    return (field, h) if return_mass else field


def check_step(dt: float, integrator: str) -> None:
    """Refuse a step size ``dt <= 0`` (or non-finite) and an unknown integrator name."""
    if not (isinstance(dt, (int, float)) and dt > 0 and dt < float("inf")):
        raise ConfigError(f"integrator step size dt must be a finite number > 0, got {dt!r}")
    if integrator not in INTEGRATORS:
        raise ConfigError(f"integrator must be one of {INTEGRATORS}, got {integrator!r}")


def step(f: Field, x: Tensor, dt: float, integrator: str = "rk4") -> Tensor:
    """Advance ``x (N, D)`` by ``dt`` under the field ``f`` with ``integrator``."""
    check_step(dt, integrator)
    if integrator == "euler":
        return x + dt * f(x)
    if integrator == "rk4":
        k1 = f(x)
        k2 = f(x + dt / 2 * k1)
        k3 = f(x + dt / 2 * k2)
        k4 = f(x + dt * k3)
        return x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    n = x.shape[-1] // 2
    q, p = x[:, :n], x[:, n:]
    if integrator == "semi_implicit_euler":
        p = p + dt * f(x)[:, n:]
        q = q + dt * f(torch.cat([q, p], -1))[:, :n]
        return torch.cat([q, p], -1)
    p = p + dt / 2 * f(x)[:, n:]  # leapfrog: kick, drift, kick
    q = q + dt * f(torch.cat([q, p], -1))[:, :n]
    p = p + dt / 2 * f(torch.cat([q, p], -1))[:, n:]
    return torch.cat([q, p], -1)
