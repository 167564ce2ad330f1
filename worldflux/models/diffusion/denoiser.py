"""DIAMOND's denoiser: a conditioned U-Net under EDM preconditioning, and its samplers.

Reference: eloialonso/diamond @ 5bcd159, ``src/models/diffusion/{inner_model,denoiser,
diffusion_sampler}.py``. The next frame is denoised from a noisy version of itself, conditioned on
the last ``n`` frames (stacked on the channels) and the last ``n`` actions (embedded, flattened and
added to the Fourier embedding of the noise level). EDM preconditioning (Karras et al. 2022) with
offset noise: the effective noise level is ``sqrt(sigma^2 + offset^2)``, ``c_noise = log(sigma)/4``.

Axis legend: ``B`` batch, ``N`` conditioning frames, ``C`` image channels, ``H, W`` image size,
``E`` condition width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.errors import ConfigError
from worldflux.models.diffusion.blocks import GroupNorm, UNet, conv3x3
from worldflux.nn.unet import FourierFeatures

SAMPLERS = ("euler", "heun")


class InnerModel(nn.Module):
    """The U-Net ``F_theta`` that EDM wraps (keys as the reference's ``inner_model``)."""

    def __init__(
        self,
        img_channels: int,
        num_actions: int,
        num_steps_conditioning: int,
        cond_channels: int,
        channels: Sequence[int],
        depths: Sequence[int],
        attn_depths: Sequence[bool],
    ) -> None:
        super().__init__()
        if cond_channels % num_steps_conditioning or cond_channels % 2:
            raise ConfigError(
                f"denoiser.cond_channels={cond_channels} must be even and divisible by "
                f"num_steps_conditioning={num_steps_conditioning} (one action embedding per frame)"
            )
        self.noise_emb = FourierFeatures(cond_channels)
        self.act_emb = nn.Sequential(
            nn.Embedding(num_actions, cond_channels // num_steps_conditioning), nn.Flatten()
        )
        self.cond_proj = nn.Sequential(
            nn.Linear(cond_channels, cond_channels),
            nn.SiLU(),
            nn.Linear(cond_channels, cond_channels),
        )
        self.conv_in = conv3x3((num_steps_conditioning + 1) * img_channels, channels[0])
        self.unet = UNet(cond_channels, depths, channels, attn_depths)
        self.norm_out = GroupNorm(channels[0])
        self.conv_out = conv3x3(channels[0], img_channels)
        nn.init.zeros_(self.conv_out.weight)

    def forward(self, noisy: Tensor, c_noise: Tensor, obs: Tensor, act: Tensor) -> Tensor:
        """``noisy (B, C, H, W)``, ``c_noise (B,)``, ``obs (B, N*C, H, W)``, ``act (B, N)`` long."""
        cond = self.cond_proj(self.noise_emb(c_noise) + self.act_emb(act))
        x = self.conv_in(torch.cat((obs, noisy), dim=1))
        return self.conv_out(F.silu(self.norm_out(self.unet(x, cond))))


@dataclass
class Conditioners:
    """EDM's scalings, shaped to broadcast: ``c_in, c_out, c_skip (B, 1, 1, 1)``, ``c_noise (B,)``."""

    c_in: Tensor
    c_out: Tensor
    c_skip: Tensor
    c_noise: Tensor


class Denoiser(nn.Module):
    """EDM-preconditioned denoiser around :class:`InnerModel` (``inner_model``).

    Args:
        img_channels, num_actions, num_steps_conditioning: sizes given by the model.
        cond_channels, channels, depths, attn_depths: the U-Net's widths (per level).
        sigma_data: EDM's data standard deviation.
        sigma_offset_noise: standard deviation of the per-image, per-channel offset noise.
    """

    def __init__(
        self,
        img_channels: int,
        num_actions: int,
        num_steps_conditioning: int,
        cond_channels: int,
        channels: Sequence[int],
        depths: Sequence[int],
        attn_depths: Sequence[bool],
        sigma_data: float = 0.5,
        sigma_offset_noise: float = 0.3,
    ) -> None:
        super().__init__()
        self.sigma_data, self.sigma_offset_noise = float(sigma_data), float(sigma_offset_noise)
        self.inner_model = InnerModel(
            img_channels,
            num_actions,
            num_steps_conditioning,
            cond_channels,
            channels,
            depths,
            attn_depths,
        )

    def conditioners(self, sigma: Tensor) -> Conditioners:
        """EDM scalings of noise levels ``sigma (B,)``, offset noise included."""
        sigma = (sigma**2 + self.sigma_offset_noise**2).sqrt()
        c_in = 1 / (sigma**2 + self.sigma_data**2).sqrt()
        c_skip = self.sigma_data**2 / (sigma**2 + self.sigma_data**2)
        c_out = sigma * c_skip.sqrt()
        view = (-1, 1, 1, 1)
        return Conditioners(c_in.view(view), c_out.view(view), c_skip.view(view), sigma.log() / 4)

    def apply_noise(
        self, x: Tensor, sigma: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """``x + offset + sigma * eps``: offset noise ``(B, C, 1, 1)`` drawn first, then ``eps``."""
        b, c = x.shape[:2]
        offset = self.sigma_offset_noise * torch.randn(
            b, c, 1, 1, device=x.device, generator=generator
        )
        eps = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        return x + offset + eps * sigma.view(-1, 1, 1, 1)

    def forward(self, noisy: Tensor, obs: Tensor, act: Tensor, cs: Conditioners) -> Tensor:
        """The raw network output on ``noisy (B, C, H, W)`` given frames ``obs (B, N*C, H, W)``."""
        return self.inner_model(noisy * cs.c_in, cs.c_noise, obs / self.sigma_data, act)

    @staticmethod
    def wrap(noisy: Tensor, output: Tensor, cs: Conditioners) -> Tensor:
        """The denoised frame, quantised to 256 levels in ``[-1, 1]`` as the reference does."""
        d = cs.c_skip * noisy + cs.c_out * output
        return d.clamp(-1, 1).add(1).div(2).mul(255).byte().div(255).mul(2).sub(1)

    @torch.no_grad()
    def denoise(self, noisy: Tensor, sigma: Tensor, obs: Tensor, act: Tensor) -> Tensor:
        """``D(noisy; sigma)`` for ``sigma (B,)``."""
        cs = self.conditioners(sigma)
        return self.wrap(noisy, self(noisy, obs, act, cs), cs)


def build_sigmas(num_steps: int, sigma_min: float, sigma_max: float, rho: float) -> Tensor:
    """Karras et al.'s ``num_steps`` noise levels from ``sigma_max`` to ``sigma_min``, then 0."""
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    ramp = torch.linspace(0, 1, num_steps)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    return torch.cat((sigmas, sigmas.new_zeros(1)))


@dataclass(frozen=True)
class SamplerSettings:
    """EDM sampler settings (``order`` 1 is Euler, 2 is Heun; churn as in Karras et al.)."""

    num_steps: int
    sigma_min: float = 2e-3
    sigma_max: float = 5.0
    rho: float = 7.0
    order: int = 1
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = float("inf")
    s_noise: float = 1.0


@torch.no_grad()
def sample_next(
    denoiser: Denoiser,
    obs: Tensor,
    act: Tensor,
    s: SamplerSettings,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, list[Tensor]]:
    """Sample the next frame given ``obs (B, N*C, H, W)`` and ``act (B, N)``.

    Returns:
        ``(frame (B, C, H, W) in [-1, 1], trajectory)``, the trajectory holding the initial noise
        and each step's iterate.
    """
    b, c = obs.shape[0], obs.shape[1] // act.shape[1]
    # 0-dim float32 tensors, as the reference iterates them (same rounding)
    sigmas = build_sigmas(s.num_steps, s.sigma_min, s.sigma_max, s.rho).to(obs.device)
    gamma_ = min(s.s_churn / max(len(sigmas) - 1, 1), 2**0.5 - 1)
    x = torch.randn(b, c, *obs.shape[-2:], device=obs.device, generator=generator)
    ones = torch.ones(b, device=obs.device)
    trajectory = [x]
    for sigma, next_sigma in zip(sigmas[:-1], sigmas[1:]):
        gamma = gamma_ if s.s_tmin <= sigma <= s.s_tmax else 0.0
        sigma_hat = sigma * (gamma + 1)
        if gamma > 0:
            eps = torch.randn(x.shape, device=x.device, generator=generator) * s.s_noise
            x = x + eps * (sigma_hat**2 - sigma**2) ** 0.5
        denoised = denoiser.denoise(x, sigma * ones, obs, act)
        d = (x - denoised) / sigma_hat
        dt = next_sigma - sigma_hat
        if s.order == 1 or next_sigma == 0:
            x = x + d * dt  # Euler
        else:  # Heun: average the slopes at both ends
            x2 = x + d * dt
            d2 = (x2 - denoiser.denoise(x2, next_sigma * ones, obs, act)) / next_sigma
            x = x + (d + d2) / 2 * dt
        trajectory.append(x)
    return x, trajectory
