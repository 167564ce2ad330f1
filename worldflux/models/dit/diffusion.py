"""Gaussian diffusion with a learned variance range (improved DDPM), as NWM trains and samples.

Facts from facebookresearch/nwm @ 3f6cd8e (``diffusion/``, after openai/improved-diffusion and
DiT): 1000 training steps with a linear beta schedule ``1e-4 .. 0.02`` (scaled by
``1000 / steps``), epsilon prediction, ``learn_sigma``: the network's second half of channels
``v`` in ``[-1, 1]`` interpolates the log variance between the clipped posterior variance and
``beta_t``. The loss is ``mean(|eps - eps_hat|^2) + L_vb`` where the variational-bound term (in
bits per dimension) trains only the variance (the mean is detached in it). Sampling uses a
respaced process of ``num_steps`` evenly spread steps (``space_timesteps(1000, [num_steps])``),
with DDPM ancestral steps or deterministic DDIM steps (``eta = 0``); ``clip`` clamps the
``x_0`` estimate to ``[-1, 1]`` before the posterior mean (and DDIM's epsilon) are computed from
it, the reference's ``clip_denoised`` (NWM samples its VAE latents with it off).

The schedule tables are float64 numpy arrays (as in the reference), looked up per step and cast
to float32; they are plain data, never module state, so a model built on ``meta`` needs nothing.

Axis legend: ``B`` batch, ``C`` latent channels, ``Hh, W`` latent height and width.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from worldflux.errors import ConfigError

SAMPLERS = ("ddpm", "ddim")
#: ``model(x_t, t) -> (B, 2C, Hh, W)`` with ``t`` in the original 1000-step numbering.
Denoiser = Callable[[Tensor, Tensor], Tensor]


def linear_betas(steps: int) -> np.ndarray:
    """Ho et al.'s linear schedule, stretched so that any ``steps`` spans the same range."""
    scale = 1000 / steps
    return np.linspace(scale * 0.0001, scale * 0.02, steps, dtype=np.float64)


def spaced_steps(total: int, count: int) -> list[int]:
    """``count`` evenly spread steps of ``range(total)`` (the reference's one-section spacing)."""
    if not 1 <= count <= total:
        raise ConfigError(f"sampler steps must be in [1, {total}], got {count}")
    stride = 1 if count <= 1 else (total - 1) / (count - 1)
    return sorted({round(i * stride) for i in range(count)})


def _take(table: np.ndarray, t: Tensor, like: Tensor) -> Tensor:
    """``table[t]`` as float32, broadcast to the shape of ``like``."""
    out = torch.from_numpy(table).to(t.device)[t].float()
    return out.view(-1, *([1] * (like.dim() - 1))).expand_as(like)


def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """KL between two diagonal Gaussians, elementwise (nats)."""
    return 0.5 * (
        -1.0
        + logvar2
        - logvar1
        + torch.exp(logvar1 - logvar2)
        + (mean1 - mean2) ** 2 * torch.exp(-logvar2)
    )


def _approx_cdf(x: Tensor) -> Tensor:
    return 0.5 * (1.0 + torch.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x.pow(3))))


def discretized_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """Log-probability of ``x`` in ``[-1, 1]`` under a Gaussian discretised to 256 bins."""
    centred, inv_std = x - mean, torch.exp(-log_scale)
    cdf_plus = _approx_cdf(inv_std * (centred + 1.0 / 255.0))
    cdf_min = _approx_cdf(inv_std * (centred - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(
        x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta)
    )


def _mean_flat(x: Tensor) -> Tensor:
    return x.mean(dim=tuple(range(1, x.dim())))


class GaussianDiffusion:
    """A (possibly respaced) diffusion process over ``steps`` kept from ``total`` base steps.

    Args:
        total: steps of the base process (1000).
        keep: the base steps this process keeps (``None``: all; sampling uses fewer).
    """

    def __init__(self, total: int = 1000, keep: list[int] | None = None) -> None:
        base = np.cumprod(1.0 - linear_betas(total))
        keep = list(range(total)) if keep is None else sorted(keep)
        self.timestep_map = np.asarray(keep, dtype=np.int64)
        # a respaced process keeps the base alpha-bars at its steps
        acp = base[self.timestep_map]
        betas = 1.0 - acp / np.append(1.0, acp[:-1])
        self.num_timesteps = len(betas)
        self.betas, self.alphas_cumprod = betas, acp
        self.alphas_cumprod_prev = np.append(1.0, acp[:-1])
        self.sqrt_alphas_cumprod = np.sqrt(acp)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - acp)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / acp)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / acp - 1)
        var = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - acp)
        self.posterior_variance = var
        # the posterior variance is 0 at step 0: its log is clipped to the next step's
        self.posterior_log_variance_clipped = (
            np.log(np.append(var[1], var[1:])) if len(var) > 1 else np.array([np.log(betas[0])])
        )
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - acp)
        self.posterior_mean_coef2 = (
            (1.0 - self.alphas_cumprod_prev) * np.sqrt(1.0 - betas) / (1.0 - acp)
        )
        self.log_betas = np.log(betas)

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise``."""
        return (
            _take(self.sqrt_alphas_cumprod, t, x0) * x0
            + _take(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise
        )

    def posterior(self, x0: Tensor, xt: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and clipped log variance of ``q(x_{t-1} | x_t, x_0)``."""
        mean = (
            _take(self.posterior_mean_coef1, t, xt) * x0
            + _take(self.posterior_mean_coef2, t, xt) * xt
        )
        return mean, _take(self.posterior_log_variance_clipped, t, xt)

    def p_mean_variance(
        self, out: Tensor, xt: Tensor, t: Tensor, clip: bool = False
    ) -> dict[str, Tensor]:
        """Mean, log variance and ``x_0`` of ``p(x_{t-1} | x_t)`` from the network's output.

        ``clip`` clamps the ``x_0`` estimate to ``[-1, 1]`` (pixel-space data; NWM's latents
        are not clipped).
        """
        eps, v = out.split(xt.shape[1], dim=1)
        min_log = _take(self.posterior_log_variance_clipped, t, xt)
        max_log = _take(self.log_betas, t, xt)
        frac = (v + 1) / 2  # v in [-1, 1] spans [posterior variance, beta_t]
        log_var = frac * max_log + (1 - frac) * min_log
        x0 = (
            _take(self.sqrt_recip_alphas_cumprod, t, xt) * xt
            - _take(self.sqrt_recipm1_alphas_cumprod, t, xt) * eps
        )
        if clip:  # before the posterior mean, as the reference's process_xstart
            x0 = x0.clamp(-1.0, 1.0)
        mean, _ = self.posterior(x0, xt, t)
        return {"mean": mean, "log_variance": log_var, "pred_xstart": x0, "eps": eps}

    def vb_terms(self, out: Tensor, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """Per-sample variational-bound term (bits per dim): KL, or the decoder NLL at ``t = 0``."""
        true_mean, true_log_var = self.posterior(x0, xt, t)
        p = self.p_mean_variance(out, xt, t)
        kl = _mean_flat(normal_kl(true_mean, true_log_var, p["mean"], p["log_variance"]))
        nll = -discretized_gaussian_log_likelihood(x0, p["mean"], 0.5 * p["log_variance"])
        return torch.where(t == 0, _mean_flat(nll), kl) / np.log(2.0)

    def training_losses(
        self, model: Denoiser, x0: Tensor, t: Tensor, noise: Tensor
    ) -> dict[str, Tensor]:
        """Per-sample ``mse``, ``vb`` and ``loss = mse + vb`` for ``x0 (B, C, Hh, W)`` at ``t``."""
        xt = self.q_sample(x0, t, noise)
        out = model(xt, self._map(t))
        c = x0.shape[1]
        if out.shape != (x0.shape[0], 2 * c, *x0.shape[2:]):
            raise ConfigError(
                f"the denoiser must output 2 x {c} channels (learn_sigma), got {tuple(out.shape)}"
            )
        eps, v = out.split(c, dim=1)
        # the bound trains the variance only: the mean's output is detached in it
        vb = self.vb_terms(torch.cat([eps.detach(), v], 1), x0, xt, t)
        mse = _mean_flat((noise - eps) ** 2)
        return {"mse": mse, "vb": vb, "loss": mse + vb}

    def _map(self, t: Tensor) -> Tensor:
        return torch.as_tensor(self.timestep_map, device=t.device)[t]

    def step(
        self,
        model: Denoiser,
        x: Tensor,
        i: int,
        sampler: str,
        generator: torch.Generator | None = None,
        clip: bool = False,
    ) -> Tensor:
        """One reverse step from process step ``i`` (DDPM ancestral or DDIM with ``eta = 0``)."""
        t = torch.full((x.shape[0],), i, device=x.device, dtype=torch.long)
        if sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        p = self.p_mean_variance(model(x, self._map(t)), x, t, clip)
        # drawn on every step by both samplers, as the reference does (same random stream)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if sampler == "ddim":
            eps = (_take(self.sqrt_recip_alphas_cumprod, t, x) * x - p["pred_xstart"]) / _take(
                self.sqrt_recipm1_alphas_cumprod, t, x
            )
            abar_prev = _take(self.alphas_cumprod_prev, t, x)
            return p["pred_xstart"] * abar_prev.sqrt() + (1 - abar_prev).sqrt() * eps
        if i == 0:  # no noise on the last step
            return p["mean"]
        return p["mean"] + torch.exp(0.5 * p["log_variance"]) * noise

    def sample(
        self,
        model: Denoiser,
        noise: Tensor,
        sampler: str = "ddpm",
        generator: torch.Generator | None = None,
        clip: bool = False,
    ) -> Tensor:
        """Run every step of this process from ``noise`` (``x_T``) down to ``x_0``."""
        x = noise
        for i in reversed(range(self.num_timesteps)):
            x = self.step(model, x, i, sampler, generator, clip)
        return x
