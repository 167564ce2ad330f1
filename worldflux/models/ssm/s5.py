"""S5 (MIMO diagonal state-space) layers with a parallel associative scan, R2I's recurrent core.

Facts from chandar-lab/Recall2Imagine @ 6e317e7, ``recall2imagine/ssm/mimo.py`` and
``ssm/common.py`` (Smith et al., "Simplified State Space Layers", ICLR 2023): each layer holds a
complex diagonal state matrix ``Lambda (P,)`` initialised from the HiPPO-LegS normal part (its
eigenvalues, repeated over ``blocks`` diagonal blocks), input and output matrices ``B (P, H)``
and ``C (H, P)`` stored as real/imaginary pairs (``B = V^-1 B0``, ``C = C0 V``), a feedthrough
``D (H,)`` and per-state timescales ``log_step (P, 1)`` drawn uniformly in
``[log dt_min, log dt_max]``. The recurrence ``x_t = Lambda_bar x_{t-1} + B_bar u_t``,
``y_t = Re(C x_t) + D u_t`` uses the bilinear (or zero-order-hold) discretisation. A layer is
``y -> GELU -> Dense(y) * sigmoid(Dense'(y)) -> + skip -> LayerNorm`` (post-norm, GLU).

Training runs the recurrence as an associative scan over time (O(T) work, O(log T) depth); a
reset flag at step ``t`` restarts the state from the learned initial state before step ``t``.
Imagination steps it one step at a time (:meth:`S5Layer.step`).

Axis legend: ``B`` batch, ``T`` time, ``H`` model width (``units``), ``P`` state size,
``L`` layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.errors import ConfigError, ShapeError


def hippo_diagonal(n: int) -> tuple[Tensor, Tensor]:
    """Eigenvalues ``(n,)`` and eigenvectors ``(n, n)`` of HiPPO-LegS's normal part (complex128).

    The real part of every eigenvalue is the mean of the normal part's diagonal (-1/2); the
    imaginary parts and the vectors come from the Hermitian matrix ``-i S``.
    """
    idx = torch.arange(n, dtype=torch.float64)
    p = torch.sqrt(1 + 2 * idx)
    hippo = -(torch.tril(p[:, None] * p[None, :]) - torch.diag(idx))
    low = torch.sqrt(idx + 0.5)
    normal = hippo + low[:, None] * low[None, :]
    imag, vecs = torch.linalg.eigh(normal.to(torch.complex128) * -1j)
    real = torch.diagonal(normal).mean() * torch.ones(n, dtype=torch.float64)
    return torch.complex(real, imag), vecs


def lecun_normal_(t: Tensor, fan_in: int) -> Tensor:
    """In place: Flax's ``lecun_normal`` (truncated normal in [-2, 2], variance ``1/fan_in``)."""
    with torch.no_grad():
        nn.init.trunc_normal_(t, 0.0, 1.0, -2.0, 2.0)
        return t.mul_(1.0 / math.sqrt(fan_in) / 0.87962566103423978)


def affine_scan(a: Tensor, c: Tensor) -> Tensor:
    """Prefix states of ``x_t = a_t * x_{t-1} + c_t`` from ``x_{-1} = 0`` along axis 1.

    An even/odd associative scan: pairs are combined, the half-length problem is solved
    recursively, and the even positions are filled in; O(T) work and O(log T) depth.

    Args:
        a, c: ``(B, T, ...)`` (complex) multipliers and offsets.

    Returns:
        ``x (B, T, ...)``.
    """
    t = a.shape[1]
    if t == 1:
        return c
    a_even, c_even = a[:, 0 : t - 1 : 2], c[:, 0 : t - 1 : 2]
    a_odd, c_odd = a[:, 1::2], c[:, 1::2]
    # compose each (even, odd) pair: the odd position's prefix in terms of the pair's start
    x_odd = affine_scan(a_odd * a_even, a_odd * c_even + c_odd)
    # even position 2k (k >= 1) continues from the prefix at 2k - 1
    x_rest = a[:, 2::2] * x_odd[:, : (t - 1) // 2] + c[:, 2::2]
    x_even = torch.cat([c[:, :1], x_rest], 1)
    pairs = torch.stack([x_even[:, : t // 2], x_odd], 2).flatten(1, 2)
    return torch.cat([pairs, x_even[:, t // 2 :]], 1) if t % 2 else pairs


def check_layer_args(
    units: int, state: int, blocks: int, dt_min: float, dt_max: float, discretization: str
) -> None:
    """Raise :class:`ConfigError` for sizes, timescales or discretisations the layer cannot use.

    The initial timescales must satisfy ``1e-6 <= dt_min < dt_max <= 1``: the reference draws
    them from ``[1e-3, 1e-1]``; a step past 1 spans the whole memory in one update, and one
    below 1e-6 cannot move a float32 state.
    """
    if min(units, state, blocks) < 1:
        raise ConfigError(f"S5 sizes must be >= 1, got units={units} state={state} blocks={blocks}")
    if state % blocks:
        raise ConfigError(f"S5 state size {state} must be divisible by blocks ({blocks})")
    if not (math.isfinite(dt_min) and math.isfinite(dt_max)) or not dt_min < dt_max:
        raise ConfigError(f"S5 dt range needs dt_min < dt_max, got {dt_min}, {dt_max}")
    if dt_min < 1e-6 or dt_max > 1.0:
        raise ConfigError(
            f"S5 dt range must lie in [1e-6, 1.0] (reference 0.001, 0.1), got {dt_min}, {dt_max}"
        )
    if discretization not in ("bilinear", "zoh"):
        raise ConfigError(f"S5 discretization must be 'bilinear' or 'zoh', got {discretization!r}")


class S5Layer(nn.Module):
    """One S5 MIMO layer with R2I's GLU output block (``SingleLayer`` of the reference).

    Args:
        units: model width ``H``.
        state: state size ``P``.
        blocks: diagonal blocks of the HiPPO initialisation (``n_blocks``).
        dt_min, dt_max: range of the initial timescales.
        discretization: ``"bilinear"`` (reference R2I) or ``"zoh"``.
    """

    def __init__(
        self,
        units: int,
        state: int,
        blocks: int = 8,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        discretization: str = "bilinear",
    ) -> None:
        super().__init__()
        check_layer_args(units, state, blocks, dt_min, dt_max, discretization)
        self.units, self.state, self.blocks = units, state, blocks
        self.dt_min, self.dt_max, self.discretization = dt_min, dt_max, discretization
        self.Lambda_re = nn.Parameter(torch.empty(state))
        self.Lambda_im = nn.Parameter(torch.empty(state))
        self.B = nn.Parameter(torch.empty(state, units, 2))
        self.C = nn.Parameter(torch.empty(units, state, 2))
        self.D = nn.Parameter(torch.empty(units))
        self.log_step = nn.Parameter(torch.empty(state, 1))
        self.out = nn.Linear(units, units)
        self.out2 = nn.Linear(units, units)
        self.norm = nn.LayerNorm(units, eps=1e-6)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The reference's initialisation (skipped on the ``meta`` device)."""
        for lin in (self.out, self.out2):
            if not lin.weight.is_meta:
                lecun_normal_(lin.weight, self.units)
                lin.bias.zero_()
        if self.B.is_meta:
            return
        dev = self.B.device
        size = self.state // self.blocks
        lam, vecs = hippo_diagonal(size)
        v = torch.block_diag(*[vecs] * self.blocks)
        self.Lambda_re.copy_(lam.real.repeat(self.blocks))
        self.Lambda_im.copy_(lam.imag.repeat(self.blocks))
        b0 = lecun_normal_(torch.empty(self.state, self.units, dtype=torch.float64), self.state)
        b = v.conj().T @ b0.to(torch.complex128)
        self.B.copy_(torch.stack([b.real, b.imag], -1).to(dev))
        c0 = lecun_normal_(
            torch.empty(self.units, self.state, 2, dtype=torch.float64), self.units * self.state
        )
        c = torch.complex(c0[..., 0], c0[..., 1]) @ v
        self.C.copy_(torch.stack([c.real, c.imag], -1).to(dev))
        nn.init.normal_(self.D)
        lo, hi = math.log(self.dt_min), math.log(self.dt_max)
        nn.init.uniform_(self.log_step, lo, hi)

    def discrete(self) -> tuple[Tensor, Tensor, Tensor]:
        """``Lambda_bar (P,)``, ``B_bar (P, H)`` and ``C (H, P)`` (complex64)."""
        lam = torch.complex(self.Lambda_re, self.Lambda_im)
        b = torch.complex(self.B[..., 0], self.B[..., 1])
        step = torch.exp(self.log_step[:, 0])
        if self.discretization == "bilinear":
            inv = 1.0 / (1.0 - step / 2.0 * lam)
            lam_bar = inv * (1.0 + step / 2.0 * lam)
            b_bar = (inv * step)[:, None] * b
        else:  # zero-order hold
            lam_bar = torch.exp(lam * step)
            b_bar = ((lam_bar - 1.0) / lam)[:, None] * b
        return lam_bar, b_bar, torch.complex(self.C[..., 0], self.C[..., 1])

    def _output(self, u: Tensor, x: Tensor, c: Tensor) -> Tensor:
        y = (x @ c.T).real + self.D * u
        y = F.gelu(y, approximate="tanh")  # Flax's nn.gelu is the tanh approximation
        y = self.out(y) * torch.sigmoid(self.out2(y))
        return self.norm(u + y)

    def forward(self, u: Tensor, x0: Tensor, reset: Tensor, init: Tensor) -> tuple[Tensor, Tensor]:
        """Scan a sequence.

        Args:
            u: inputs ``(B, T, H)``.
            x0: state before the first step ``(B, P)`` complex.
            reset: ``(B, T)`` float, 1 where the state restarts from ``init`` before the step.
            init: the restart state ``(B, P)`` complex.

        Returns:
            ``(y, x)``: outputs ``(B, T, H)`` and states ``(B, T, P)`` complex.
        """
        if u.dim() != 3 or u.shape[1] < 1 or u.shape[2] != self.units:
            raise ShapeError(
                f"S5Layer scans inputs of shape (B, T >= 1, {self.units}), got {tuple(u.shape)}"
            )
        if reset.shape != u.shape[:2]:
            raise ShapeError(
                f"reset must have shape {tuple(u.shape[:2])}, got {tuple(reset.shape)}"
            )
        lam, b_bar, c = self.discrete()
        bu = u.to(b_bar.dtype) @ b_bar.T
        keep = (1.0 - reset)[..., None].to(bu.dtype)
        a = lam * keep
        # a restart feeds the initial state through one step of Lambda_bar
        start = reset[..., None].to(bu.dtype) * (lam * init[:, None])
        offset = bu + start
        offset = torch.cat([offset[:, :1] + a[:, :1] * x0[:, None], offset[:, 1:]], 1)
        x = affine_scan(a, offset)
        return self._output(u, x, c), x

    def step(self, u: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """One recurrent step: ``u (N, H)``, ``x (N, P)`` complex -> ``(y (N, H), x (N, P))``."""
        lam, b_bar, c = self.discrete()
        x = lam * x + u.to(b_bar.dtype) @ b_bar.T
        return self._output(u, x, c), x


class S5Stack(nn.Module):
    """``layers`` stacked :class:`S5Layer` (the reference's ``SequenceBlock``)."""

    def __init__(self, units: int, state: int, layers: int, **layer_kw: object) -> None:
        super().__init__()
        self.layers = nn.ModuleList(S5Layer(units, state, **layer_kw) for _ in range(layers))

    def forward(self, u: Tensor, x0: Tensor, reset: Tensor, init: Tensor) -> tuple[Tensor, Tensor]:
        """``u (B, T, H)``, ``x0, init (B, L, P)`` complex -> ``(y (B, T, H), x (B, T, L, P))``."""
        states = []
        for i, layer in enumerate(self.layers):
            u, x = layer(u, x0[:, i], reset, init[:, i])
            states.append(x)
        return u, torch.stack(states, 2)

    def step(self, u: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """One step: ``u (N, H)``, ``x (N, L, P)`` complex -> ``(y (N, H), x (N, L, P))``."""
        states = []
        for i, layer in enumerate(self.layers):
            u, h = layer.step(u, x[:, i])
            states.append(h)
        return u, torch.stack(states, 1)
