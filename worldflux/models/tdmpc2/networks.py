"""TD-MPC2's networks: SimNorm, LayerNorm+Mish MLPs, the encoder, heads and the Q ensemble.

Layer order, widths and initialisation follow ``tdmpc2/common/layers.py``, ``world_model.py`` and
``init.py`` of nicklashansen/tdmpc2 at commit ``e9f5932``: every hidden layer is
Linear -> (Dropout) -> LayerNorm -> Mish, linear weights are truncated-normal with std 0.02 and
zero bias, and the last layers of the reward head and of every Q-function start at zero.

Axis legend: ``B`` batch (any leading dims), ``E`` ensemble member, ``A`` action size, ``Z`` latent
size, ``K`` number of two-hot bins, ``C, Hh, W`` image channels, height, width.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def init_weights(module: nn.Module) -> None:
    """The official initialisation: trunc-normal(0.02) linear weights, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.uniform_(module.weight, -0.02, 0.02)


class SimNorm(nn.Module):
    """Simplicial normalisation: a softmax over consecutive groups of ``dim`` features."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = int(dim)

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, Z)`` -> ``(B, Z)``, each group of ``dim`` entries summing to one."""
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
        self.act = act if act is not None else nn.Mish()
        self.dropout = nn.Dropout(dropout) if dropout else None

    def forward(self, x: Tensor) -> Tensor:
        x = super().forward(x)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.act(self.ln(x))


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    act: nn.Module | None = None,
    dropout: float = 0.0,
) -> nn.Sequential:
    """TD-MPC2's MLP: NormedLinear hidden layers (dropout on the first only), then a plain Linear
    output, or a NormedLinear with activation ``act`` (e.g. SimNorm) when ``act`` is given."""
    dims = [in_dim, *hidden, out_dim]
    layers: list[nn.Module] = [
        NormedLinear(dims[i], dims[i + 1], dropout=dropout if i == 0 else 0.0)
        for i in range(len(dims) - 2)
    ]
    layers.append(
        NormedLinear(dims[-2], dims[-1], act=act) if act else nn.Linear(dims[-2], dims[-1])
    )
    net = nn.Sequential(*layers)
    net.apply(init_weights)
    return net


class ShiftAug(nn.Module):
    """Random shift of up to ``pad`` pixels (DrQ-v2), via replicate padding and grid sampling."""

    def __init__(self, pad: int = 3) -> None:
        super().__init__()
        self.pad = int(pad)

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, C, Hh, W)`` float -> shifted ``(B, C, Hh, W)``."""
        n, _, h, w = x.shape
        if h != w:
            raise ValueError(f"ShiftAug needs square images, got {h}x{w}")
        x = F.pad(x, (self.pad,) * 4, mode="replicate")
        eps = 1.0 / (h + 2 * self.pad)
        grid_1d = torch.linspace(
            -1.0 + eps, 1.0 - eps, h + 2 * self.pad, device=x.device, dtype=x.dtype
        )[:h]
        grid_1d = grid_1d.unsqueeze(0).expand(h, h).unsqueeze(2)
        base = (
            torch.cat([grid_1d, grid_1d.transpose(1, 0)], dim=2).unsqueeze(0).expand(n, -1, -1, -1)
        )
        shift = torch.randint(0, 2 * self.pad + 1, (n, 1, 1, 2), device=x.device).to(x.dtype)
        grid = base + shift * (2.0 / (h + 2 * self.pad))
        return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


LATENT_NORMS = ("simnorm", "layernorm")


def latent_activation(latent_norm: str, simnorm_dim: int) -> nn.Module:
    """The activation applied to the latent after its LayerNorm: SimNorm (TD-MPC2) or none
    (a LayerNorm-only latent, offered for comparison; not an official configuration)."""
    if latent_norm not in LATENT_NORMS:
        raise ValueError(f"latent_norm must be one of {LATENT_NORMS}, got {latent_norm!r}")
    return SimNorm(simnorm_dim) if latent_norm == "simnorm" else nn.Identity()


class Encoder(nn.Module):
    """Observation encoder ending in SimNorm (or LayerNorm only, ``latent_norm="layernorm"``).

    Vectors ``(D,)`` go through an MLP with ``max(num_enc_layers - 1, 1)`` hidden layers of
    ``enc_dim`` (input ``D + task_dim``); 64x64 images go through ShiftAug, centring to
    ``[-0.5, 0.5]`` and four ReLU convolutions of ``num_channels`` whose flattened output
    (``num_channels * 4 * 4``) must equal ``latent_dim``, as in the official code.
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        latent_dim: int,
        enc_dim: int,
        num_enc_layers: int,
        simnorm_dim: int,
        task_dim: int = 0,
        num_channels: int = 32,
        shift_pad: int = 3,
        latent_norm: str = "simnorm",
    ) -> None:
        super().__init__()
        act = latent_activation(latent_norm, simnorm_dim)
        self.obs_shape = tuple(int(s) for s in obs_shape)
        self.is_image = len(self.obs_shape) == 3
        if self.is_image:
            if num_channels * 16 != latent_dim:
                from worldflux.errors import ConfigError  # a ValueError: the same API

                raise ConfigError(
                    f"image observations {self.obs_shape}: the pixel encoder flattens to "
                    f"num_channels*4*4 = {num_channels * 16} features, which must equal "
                    f"latent_dim ({latent_dim}); this preset is sized for vector observations "
                    "(use a vector env such as env=catch_vector, or a preset such as tdmpc2/5m)"
                )
            self.aug = ShiftAug(shift_pad)
            self.net = nn.Sequential(
                nn.Conv2d(self.obs_shape[0], num_channels, 7, stride=2),
                nn.ReLU(),
                nn.Conv2d(num_channels, num_channels, 5, stride=2),
                nn.ReLU(),
                nn.Conv2d(num_channels, num_channels, 3, stride=2),
                nn.ReLU(),
                nn.Conv2d(num_channels, num_channels, 3, stride=1),
                nn.Flatten(),
                act if latent_norm == "simnorm" else nn.LayerNorm(latent_dim),
            )
        else:
            hidden = max(num_enc_layers - 1, 1) * [enc_dim]
            self.net = mlp(self.obs_shape[0] + task_dim, hidden, latent_dim, act=act)

    def forward(self, obs: Tensor) -> Tensor:
        """``obs (B, D + task_dim)`` or ``(B, C, 64, 64)`` (float in [0, 1]) -> ``z (B, Z)``."""
        if self.is_image:
            # ShiftAug is linear in intensity, so shifting [0, 1] images then centring equals
            # the official shift of [0, 255] images followed by x / 255 - 0.5.
            return self.net(self.aug(obs.float()) - 0.5)
        return self.net(obs)


class LatentDynamics(nn.Module):
    """``z' = f(z, a[, e])``: an MLP of two ``mlp_dim`` layers whose output goes through
    LayerNorm and SimNorm (or LayerNorm only, ``latent_norm="layernorm"``)."""

    def __init__(
        self,
        latent_dim: int,
        action_dim: int,
        mlp_dim: int,
        simnorm_dim: int,
        task_dim: int = 0,
        latent_norm: str = "simnorm",
    ) -> None:
        super().__init__()
        act = latent_activation(latent_norm, simnorm_dim)
        self.net = mlp(latent_dim + action_dim + task_dim, 2 * [mlp_dim], latent_dim, act=act)

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, Z + A + task_dim)`` -> ``z' (B, Z)``."""
        return self.net(x)


class RewardHead(nn.Module):
    """Reward logits over ``num_bins`` two-hot bins from ``(z, a[, e])``; last layer starts at 0."""

    def __init__(
        self, latent_dim: int, action_dim: int, mlp_dim: int, num_bins: int, task_dim: int = 0
    ) -> None:
        super().__init__()
        self.net = mlp(latent_dim + action_dim + task_dim, 2 * [mlp_dim], num_bins)
        nn.init.zeros_(self.net[-1].weight)  # type: ignore[arg-type]

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, Z + A + task_dim)`` -> logits ``(B, K)``."""
        return self.net(x)


class TerminationHead(nn.Module):
    """Termination logit from ``(z'[, e])`` (episodic tasks only)."""

    def __init__(self, latent_dim: int, mlp_dim: int, task_dim: int = 0) -> None:
        super().__init__()
        self.net = mlp(latent_dim + task_dim, 2 * [mlp_dim], 1)

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, Z + task_dim)`` -> logit ``(B,)``."""
        return self.net(x).squeeze(-1)


class GaussianPolicyPrior(nn.Module):
    """The policy prior's network: mean and log-std of a Gaussian, log-std squashed by tanh into
    ``[log_std_min, log_std_max]``. Sampling and the tanh squashing live in the module."""

    def __init__(
        self,
        latent_dim: int,
        action_dim: int,
        mlp_dim: int,
        log_std_min: float,
        log_std_max: float,
        task_dim: int = 0,
    ) -> None:
        super().__init__()
        self.net = mlp(latent_dim + task_dim, 2 * [mlp_dim], 2 * action_dim)
        self.log_std_min = float(log_std_min)
        self.log_std_dif = float(log_std_max) - float(log_std_min)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x (B, Z + task_dim)`` -> pre-tanh ``mean (B, A)`` and ``log_std (B, A)``."""
        mean, raw = self.net(x).chunk(2, dim=-1)
        return mean, self.log_std_min + 0.5 * self.log_std_dif * (torch.tanh(raw) + 1)


class EnsembleLinear(nn.Module):
    """``E`` independent linear layers applied to the same input (or one input per member)."""

    def __init__(self, num_members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_members, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(num_members, out_features))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: Tensor, detach: bool = False, members: Tensor | None = None) -> Tensor:
        """``x (B, in)`` (shared) or ``(E', B, in)`` -> ``(E', B, out)``; ``members`` selects a
        subset ``E'`` of the ensemble (all by default)."""
        w, b = (self.weight.detach(), self.bias.detach()) if detach else (self.weight, self.bias)
        if members is not None:
            w, b = w[members], b[members]
        eq = "bi,eoi->ebo" if x.dim() == 2 else "ebi,eoi->ebo"
        return torch.einsum(eq, x, w) + b.unsqueeze(1)


class QEnsemble(nn.Module):
    """``num_q`` Q-functions over ``(z, a[, e])``, evaluated together.

    Each member is the official Q MLP: Linear -> Dropout(``dropout``) -> LayerNorm -> Mish,
    Linear -> LayerNorm -> Mish, Linear to ``num_bins`` logits (zero-initialised weight).
    """

    def __init__(
        self,
        latent_dim: int,
        action_dim: int,
        mlp_dim: int,
        num_bins: int,
        num_q: int,
        dropout: float = 0.01,
        task_dim: int = 0,
    ) -> None:
        super().__init__()
        in_dim = latent_dim + action_dim + task_dim
        self.num_q = int(num_q)
        self.layers = nn.ModuleList(
            [
                EnsembleLinear(num_q, in_dim, mlp_dim),
                EnsembleLinear(num_q, mlp_dim, mlp_dim),
                EnsembleLinear(num_q, mlp_dim, num_bins),
            ]
        )
        self.ln_weight = nn.Parameter(torch.ones(2, num_q, mlp_dim))
        self.ln_bias = nn.Parameter(torch.zeros(2, num_q, mlp_dim))
        self.dropout = nn.Dropout(dropout) if dropout else None
        nn.init.zeros_(self.layers[-1].weight)  # type: ignore[arg-type]

    def forward(self, x: Tensor, detach: bool = False, members: Tensor | None = None) -> Tensor:
        """``x (..., Z + A + task_dim)`` -> logits ``(E, ..., K)``.

        Args:
            x: shared input of every member.
            detach: use detached parameters (the official ``_detach_Qs``), so gradients reach the
                input but not the Q-functions.
            members: indices of the members to evaluate (all by default); the official code
                evaluates all and then picks, which gives the same values.
        """
        lead = x.shape[:-1]
        h = x.reshape(-1, x.shape[-1])
        ln_w = self.ln_weight.detach() if detach else self.ln_weight
        ln_b = self.ln_bias.detach() if detach else self.ln_bias
        if members is not None:
            ln_w, ln_b = ln_w[:, members], ln_b[:, members]
        for i, layer in enumerate(self.layers[:-1]):
            h = layer(h, detach, members)
            if i == 0 and self.dropout is not None:
                h = self.dropout(h)
            h = F.layer_norm(h, h.shape[-1:]) * ln_w[i].unsqueeze(1) + ln_b[i].unsqueeze(1)
            h = F.mish(h)
        out = self.layers[-1](h, detach, members)
        return out.reshape(out.shape[0], *lead, out.shape[-1])


def count_parameters(module: nn.Module | None) -> int:
    """Number of trainable parameters of ``module`` (0 for ``None``)."""
    if module is None:
        return 0
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
