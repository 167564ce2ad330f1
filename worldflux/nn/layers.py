"""Dense building blocks: initialisers, norms, norm + linear + activation blocks, MLPs, SimNorm.

Two conventions meet here, each kept exactly as its family's reference code defines it:

* DreamerV3 (danijar/dreamerv3 ``embodied/jax/nets.py`` @ e3f0224): weights from a normal
  truncated to two standard deviations, rescaled to unit variance (factor 1.1368) and by
  ``1/sqrt(fan_in)``, times the layer's ``outscale``; zero biases. Hidden layers are
  Linear -> RMSNorm (``eps = 1e-4``, learned scale, no shift) -> SiLU (:class:`Dense`). The
  block-diagonal layer counts its fan-in over *all* input units, not one block's.
* TD-MPC2 (nicklashansen/tdmpc2 ``common/layers.py``, ``init.py`` @ e9f5932): trunc-normal(0.02)
  weights and zero biases; hidden layers are Linear -> (Dropout) -> LayerNorm -> Mish
  (:class:`NormedLinear`); latents are SimNorm'ed (:class:`SimNorm`).

Axis legend: ``N`` flattened batch, ``G`` blocks, ``I``/``O`` input/output units per block,
``E`` ensemble members.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.errors import ConfigError
from worldflux.nn.fused import Mish, rms_norm_silu

TRUNC_STD_FIX = 1.1368  # rescales a [-2, 2]-truncated standard normal back to unit variance


def init_weight_(weight: Tensor, fan_in: int, outscale: float = 1.0) -> None:
    """In place: truncated normal with std ``outscale / sqrt(fan_in)`` (DreamerV3's ``trunc_normal_in``)."""
    with torch.no_grad():
        if outscale == 0.0:
            weight.zero_()
            return
        nn.init.trunc_normal_(weight, 0.0, 1.0, -2.0, 2.0)
        weight.mul_(TRUNC_STD_FIX * outscale / math.sqrt(fan_in))


def init_trunc_normal(module: nn.Module) -> None:
    """TD-MPC2's initialisation: trunc-normal(0.02) linear weights, zero biases (use with ``apply``)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.uniform_(module.weight, -0.02, 0.02)


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "mish": Mish,
    "tanh": nn.Tanh,
    "none": nn.Identity,
}


def activation(name: str) -> nn.Module:
    """The activation module called ``name`` (one of :data:`ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class RMSNorm(nn.Module):
    """RMS normalisation over the last axis with a learned scale and no shift."""

    def __init__(self, dim: int, eps: float = 1e-4) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.scale, self.eps)


def norm_layer(kind: str, dim: int, eps: float = 1e-4) -> nn.Module:
    """``rms`` (:class:`RMSNorm`), ``layer`` (``nn.LayerNorm``) or ``none``."""
    if kind == "rms":
        return RMSNorm(dim, eps)
    if kind == "layer":
        return nn.LayerNorm(dim, eps=eps)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown norm {kind!r}; expected 'rms', 'layer' or 'none'")


class Linear(nn.Linear):
    """``nn.Linear`` with DreamerV3's initialisation and output scale."""

    def __init__(self, in_dim: int, out_dim: int, outscale: float = 1.0) -> None:
        self.outscale = outscale
        super().__init__(in_dim, out_dim)

    def reset_parameters(self) -> None:
        init_weight_(self.weight, self.in_features, self.outscale)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class NormAct(nn.Module):
    """Norm over the last axis, then activation; RMSNorm + SiLU run fused."""

    def __init__(self, kind: str, dim: int, act: str) -> None:
        super().__init__()
        self.norm = norm_layer(kind, dim)
        self.act = activation(act)
        self.fused = kind == "rms" and act == "silu"

    def forward(self, x: Tensor) -> Tensor:
        if self.fused and isinstance(self.norm, RMSNorm):
            return rms_norm_silu(x, self.norm.scale, self.norm.eps)
        return self.act(self.norm(x))


class Dense(nn.Module):
    """Linear, norm, activation: DreamerV3's hidden layer."""

    def __init__(self, in_dim: int, out_dim: int, norm: str = "rms", act: str = "silu") -> None:
        super().__init__()
        self.linear = Linear(in_dim, out_dim)
        self.normact = NormAct(norm, out_dim, act)

    def forward(self, x: Tensor) -> Tensor:
        return self.normact(self.linear(x))


class MLP(nn.Sequential):
    """``layers`` :class:`Dense` layers of ``units`` (DreamerV3's ``nets.MLP``)."""

    def __init__(self, in_dim: int, layers: int, units: int, norm: str = "rms", act: str = "silu"):
        dims = [in_dim] + [units] * layers
        super().__init__(*[Dense(dims[i], dims[i + 1], norm, act) for i in range(layers)])
        self.out_dim = dims[-1]


class BlockLinear(nn.Module):
    """Block-diagonal linear layer: input block ``g`` only feeds output block ``g``.

    Computed as one batched matrix product over the ``G`` blocks.
    """

    def __init__(self, in_dim: int, out_dim: int, blocks: int, outscale: float = 1.0) -> None:
        super().__init__()
        if in_dim % blocks or out_dim % blocks:
            raise ConfigError(
                f"BlockLinear sizes {in_dim} -> {out_dim} must be divisible by blocks={blocks}"
            )
        self.blocks, self.in_dim, self.out_dim = blocks, in_dim, out_dim
        self.weight = nn.Parameter(torch.empty(blocks, in_dim // blocks, out_dim // blocks))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        init_weight_(self.weight, in_dim, outscale)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.blocks, self.in_dim // self.blocks).transpose(0, 1)  # G N I
        y = torch.baddbmm(self.bias.view(self.blocks, 1, -1), x, self.weight)  # G N O
        return y.transpose(0, 1).reshape(*lead, self.out_dim)


class SimNorm(nn.Module):
    """Simplicial normalisation: a softmax over consecutive groups of ``dim`` features."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = int(dim)

    def forward(self, x: Tensor) -> Tensor:
        """``x (..., Z)`` -> ``(..., Z)``, each group of ``dim`` entries summing to one."""
        groups = x.unflatten(-1, (-1, self.dim))
        return torch.softmax(groups, dim=-1).flatten(-2)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class NormedLinear(nn.Linear):
    """Linear layer followed by optional dropout, LayerNorm and an activation (Mish by default)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        dropout: float = 0.0,
        act: nn.Module | None = None,
    ) -> None:
        super().__init__(in_features, out_features)
        self.ln = nn.LayerNorm(out_features)
        self.act = act if act is not None else Mish()
        self.dropout = nn.Dropout(dropout) if dropout else None

    def forward(self, x: Tensor) -> Tensor:
        x = super().forward(x)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.act(self.ln(x))


def normed_mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    act: nn.Module | None = None,
    dropout: float = 0.0,
) -> nn.Sequential:
    """TD-MPC2's MLP: :class:`NormedLinear` hidden layers (dropout on the first only), then a
    plain Linear output, or a NormedLinear with activation ``act`` (e.g. SimNorm) when given."""
    dims = [in_dim, *hidden, out_dim]
    layers: list[nn.Module] = [
        NormedLinear(dims[i], dims[i + 1], dropout=dropout if i == 0 else 0.0)
        for i in range(len(dims) - 2)
    ]
    layers.append(
        NormedLinear(dims[-2], dims[-1], act=act) if act else nn.Linear(dims[-2], dims[-1])
    )
    net = nn.Sequential(*layers)
    net.apply(init_trunc_normal)
    return net


class EnsembleLinear(nn.Module):
    """``E`` independent linear layers applied to the same input (or one input per member)."""

    def __init__(self, num_members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_members, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(num_members, out_features))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: Tensor, detach: bool = False, members: Tensor | None = None) -> Tensor:
        """``x (N, in)`` (shared) or ``(E', N, in)`` -> ``(E', N, out)``; ``members`` selects a
        subset ``E'`` of the ensemble (all by default); ``detach`` uses detached parameters."""
        w, b = (self.weight.detach(), self.bias.detach()) if detach else (self.weight, self.bias)
        if members is not None:
            w, b = w[members], b[members]
        eq = "bi,eoi->ebo" if x.dim() == 2 else "ebi,eoi->ebo"
        return torch.einsum(eq, x, w) + b.unsqueeze(1)


def count_parameters(module: nn.Module | None) -> int:
    """Number of trainable parameters of ``module`` (0 for ``None``)."""
    if module is None:
        return 0
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
