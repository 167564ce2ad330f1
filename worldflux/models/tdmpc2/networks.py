"""TD-MPC2's networks: SimNorm, LayerNorm+Mish MLPs, the encoder, heads and the Q ensemble.

Layer order, widths and initialisation follow ``tdmpc2/common/layers.py``, ``world_model.py`` and
``init.py`` of nicklashansen/tdmpc2 at commit ``e9f5932``: every hidden layer is
Linear -> (Dropout) -> LayerNorm -> Mish, linear weights are truncated-normal with std 0.02 and
zero bias, and the last layers of the reward head and of every Q-function start at zero.

Axis legend: ``B`` batch (any leading dims), ``E`` ensemble member, ``A`` action size, ``Z`` latent
size, ``K`` number of two-hot bins, ``C, Hh, W`` image channels, height, width.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.errors import ConfigError
from worldflux.nn.conv import ShiftAug
from worldflux.nn.encoders import (
    as_observation_dict,
    check_host_sizes,
    image_unit_float,
    observation_modalities,
)
from worldflux.nn.fused import mish
from worldflux.nn.layers import EnsembleLinear, SimNorm, normed_mlp

# The official names of the helpers, kept for the comparison scripts and tests.
mlp = normed_mlp
__all__ = [
    "Encoder",
    "GaussianPolicyPrior",
    "LatentDynamics",
    "QEnsemble",
    "RewardHead",
    "ShiftAug",
    "SimNorm",
    "TerminationHead",
    "mlp",
]


LATENT_NORMS = ("simnorm", "layernorm")


def latent_activation(latent_norm: str, simnorm_dim: int) -> nn.Module:
    """The activation applied to the latent after its LayerNorm: SimNorm (TD-MPC2) or none
    (a LayerNorm-only latent, offered for comparison; not an official configuration)."""
    if latent_norm not in LATENT_NORMS:
        raise ConfigError(f"latent_norm must be one of {LATENT_NORMS}, got {latent_norm!r}")
    return SimNorm(simnorm_dim) if latent_norm == "simnorm" else nn.Identity()


class Encoder(nn.Module):
    """Observation encoder ending in SimNorm (or LayerNorm only, ``latent_norm="layernorm"``).

    It follows the encoder contract of :mod:`worldflux.nn.encoders` (``obs_shape`` or
    ``modalities``, ``out_dim``, tensor or mapping input), so DreamerV3 can host it too; widths
    the host does not pass default to the ``tdmpc2:5m`` sizes.

    Vectors ``(D,)`` go through an MLP with ``max(num_enc_layers - 1, 1)`` hidden layers of
    ``enc_dim`` (input ``D + task_dim``); 64x64 images go through ShiftAug, centring to
    ``[-0.5, 0.5]`` and four ReLU convolutions of ``num_channels`` whose flattened output
    (``num_channels * 4 * 4``) must equal ``latent_dim``, as in the official code.
    """

    def __init__(
        self,
        obs_shape: Sequence[int] | None = None,
        latent_dim: int = 512,
        enc_dim: int = 256,
        num_enc_layers: int = 2,
        simnorm_dim: int = 8,
        task_dim: int = 0,
        num_channels: int = 32,
        shift_pad: int = 3,
        latent_norm: str = "simnorm",
        *,
        modalities: Mapping[str, Any] | None = None,
        **host_sizes: Any,
    ) -> None:
        super().__init__()
        check_host_sizes("Encoder", host_sizes)
        spec = observation_modalities(modalities, obs_shape)
        if len(spec) != 1:
            raise ConfigError(
                f"TD-MPC2's encoder takes one observation modality, got {sorted(spec)}"
            )
        self.key, only = next(iter(spec.items()))
        act = latent_activation(latent_norm, simnorm_dim)
        self.obs_shape = tuple(int(s) for s in only["shape"])
        self.is_image = only["kind"] == "image"
        self.out_dim = latent_dim
        if self.is_image:
            if num_channels * 16 != latent_dim:
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
            self.net = normed_mlp(self.obs_shape[0] + task_dim, hidden, latent_dim, act=act)

    def forward(self, obs: Tensor | Mapping[str, Tensor]) -> Tensor:
        """``obs (B, D + task_dim)`` or ``(B, C, 64, 64)`` (float in [0, 1] or uint8), or a
        one-entry mapping of it -> ``z (B, Z)``."""
        obs = as_observation_dict(obs, [self.key])[self.key]
        if self.is_image:
            # ShiftAug is linear in intensity, so shifting [0, 1] images then centring equals
            # the official shift of [0, 255] images followed by x / 255 - 0.5.
            return self.net(self.aug(image_unit_float(obs)) - 0.5)
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
            h = mish(h)
        out = self.layers[-1](h, detach, members)
        return out.reshape(out.shape[0], *lead, out.shape[-1])
