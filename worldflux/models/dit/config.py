"""Typed config of the DiT family (NWM's CDiT; no torch imports).

Defaults are ``dit:base`` (CDiT-B/2) in the setting of facebookresearch/nwm @ 3f6cd8e
(``config/nwm_cdit_xl.yaml``, ``models.py``, ``train.py``): 224 px frames through the
Stable-Diffusion VAE to 4 x 28 x 28 latents, 4 context frames, patch 2, actions ``(dx, dy, dyaw)``,
AdamW lr 8e-5 without weight decay, gradient clipping at 10, EMA 0.9999, 1000 diffusion steps and
250 sampling steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from worldflux.core.config import WorldModelConfig, base_default
from worldflux.core.validation import (
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    UNIT_OPEN_HIGH,
    Range,
)
from worldflux.errors import ConfigError

LATENTS = ("sd_vae", "pixels")
SAMPLERS = ("ddpm", "ddim")
#: Starts of the CDiT's learned positional embedding (NWM's normal; DiT's 2-D sin-cos).
POS_EMBED_INITS = ("normal", "sincos")
#: The SD-v1 VAE downsamples by 8 into 4 channels.
VAE_FACTOR, VAE_CHANNELS = 8, 4


@dataclass
class DiTConfig(WorldModelConfig):
    """Hyperparameters of the CDiT world model (Bar et al., CVPR 2025).

    Attributes:
        latent: ``"sd_vae"`` (frames through the frozen Stable-Diffusion VAE, scaled by
            ``vae_scale``; needs the ``dit`` extra and ``vae_weights``) or ``"pixels"`` (frames
            in ``[-1, 1]`` are the latents; small presets and tests).
        vae_weights: local path of the SD VAE weights (a diffusers ``AutoencoderKL`` folder, a
            ``.safetensors`` file or a weights-only torch state dict).
        vae_scale: latent scale of the SD VAE (0.18215).
        weights: optional local path of an NWM checkpoint (``{"model", "ema", ...}``) to load.
        context_size: past frames the next frame is predicted from (``K``).
        patch_size, hidden_size, depth, num_heads, mlp_ratio: the CDiT transformer.
        pos_embed_init: start of the learned positional embedding: ``"normal"`` (N(0, 0.02),
            NWM's) or ``"sincos"`` (DiT's 2-D sin-cos grid positions plus N(0, 0.02); ``dit:ci``,
            whose uniform black background gives the context tokens no other position cue).
        diffusion_steps: steps of the training process (1000, linear betas).
        sample_steps: steps of the sampler (250 in NWM; fewer for speed).
        sampler: ``"ddpm"`` (ancestral, as NWM) or ``"ddim"`` (deterministic, ``eta = 0``).
        clip_denoised: clamp the sampler's ``x_0`` estimates to ``[-1, 1]`` (off in NWM, whose
            SD latents are unbounded; on for pixel latents).
        rel_t: relative time offset fed for a one-step prediction (NWM: frames / 128).
        lr, weight_decay, grad_clip, ema_decay: AdamW, clipping and the EMA copy's decay.
        batch_size, batch_length, train_ratio: replay batches (``batch_length >= K + 1``).
        plan_horizon, plan_iterations, plan_samples, plan_elites, plan_sample_steps,
            plan_metric, plan_blur: CEM toward a goal frame (``plan_sample_steps`` DDIM steps per
            predicted frame; ``plan_metric`` between the last predicted latent and the goal's,
            both blurred by a Gaussian of ``plan_blur`` latent pixels, 0: none).
    """

    REFERENCE_SETTINGS: ClassVar[dict[str, dict[str, Any]]] = {
        # NWM: 224 px RGB frames (4 x 28 x 28 SD latents), (dx, dy, dyaw) actions
        "nwm": {"obs_shape": [3, 224, 224], "action_dim": 3, "latent": "sd_vae"},
    }
    SUPPORTED_MODALITIES: ClassVar[tuple[str, ...]] = ("image",)
    FIELD_RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(
            (
                "context_size",
                "patch_size",
                "hidden_size",
                "depth",
                "num_heads",
                "batch_size",
                "batch_length",
                "plan_horizon",
                "plan_iterations",
                "plan_samples",
            ),
            POSITIVE_INT,
        ),
        "diffusion_steps": Range(2),
        "sample_steps": POSITIVE_INT,
        "plan_sample_steps": POSITIVE_INT,
        "plan_elites": Range(2),
        **dict.fromkeys(("mlp_ratio", "lr", "vae_scale", "train_ratio", "rel_t"), POSITIVE),
        **dict.fromkeys(("weight_decay", "plan_blur"), NON_NEGATIVE),
        "grad_clip": POSITIVE,
        "ema_decay": UNIT_OPEN_HIGH,
    }

    _target_: str = "worldflux.models.dit.module.DiT"
    family: str = "dit"
    phases: Any = field(default_factory=lambda: base_default("dit", "phases"))
    obs_shape: list[int] = field(default_factory=lambda: [3, 224, 224])
    action_dim: int = 3
    action_kind: str = "continuous"

    latent: str = "sd_vae"
    vae_weights: Optional[str] = None
    vae_scale: float = 0.18215
    weights: Optional[str] = None

    context_size: int = 4
    patch_size: int = 2
    hidden_size: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    pos_embed_init: str = "normal"

    diffusion_steps: int = 1000
    sample_steps: int = 250
    sampler: str = "ddpm"
    clip_denoised: bool = False
    rel_t: float = 0.0078125  # one frame: 1 / 128

    lr: float = 8e-5
    weight_decay: float = 0.0
    grad_clip: Optional[float] = 10.0
    ema_decay: float = 0.9999
    batch_size: int = 16
    batch_length: int = 5
    train_ratio: float = 32.0

    plan_horizon: int = 4
    plan_iterations: int = 3
    plan_samples: int = 64
    plan_elites: int = 8
    plan_sample_steps: int = 5
    plan_metric: str = "l2"
    plan_blur: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.latent not in LATENTS:
            raise ConfigError(f"latent must be one of {LATENTS}, got {self.latent!r}")
        if self.pos_embed_init not in POS_EMBED_INITS:
            raise ConfigError(
                f"pos_embed_init must be one of {POS_EMBED_INITS}, got {self.pos_embed_init!r}"
            )
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.plan_metric not in ("l1", "l2", "cosine"):
            raise ConfigError(f"plan_metric must be l1, l2 or cosine, got {self.plan_metric!r}")
        for name in ("sample_steps", "plan_sample_steps"):
            if getattr(self, name) > self.diffusion_steps:
                raise ConfigError(
                    f"{name}={getattr(self, name)} must be in [1, diffusion_steps="
                    f"{self.diffusion_steps}]"
                )
        if self.plan_elites > self.plan_samples:
            raise ConfigError(
                f"plan_elites={self.plan_elites} must be <= plan_samples={self.plan_samples}"
            )
        if self.batch_length < self.context_size + 1:
            raise ConfigError(
                f"batch_length={self.batch_length} must be >= context_size + 1 = "
                f"{self.context_size + 1} (context frames plus the predicted one)"
            )
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"hidden_size={self.hidden_size} must be divisible by num_heads={self.num_heads}"
            )
        size = self.latent_shape()[1]
        if size % self.patch_size:
            raise ConfigError(
                f"the latent side {size} (obs_shape {self.obs_shape}, latent {self.latent!r}) "
                f"must be divisible by patch_size={self.patch_size}"
            )

    def latent_shape(self) -> tuple[int, int, int]:
        """``(C, Hh, W)`` of one frame's latent."""
        c, h, w = next(iter(self.modalities().values()))["shape"]
        if h != w:
            raise ConfigError(f"frames must be square, got obs_shape {[c, h, w]}")
        if self.latent == "pixels":
            return c, h, w
        if c != 3 or h % VAE_FACTOR:
            raise ConfigError(
                f"latent 'sd_vae' needs RGB frames with a side divisible by {VAE_FACTOR}, got "
                f"obs_shape {[c, h, w]}"
            )
        return VAE_CHANNELS, h // VAE_FACTOR, w // VAE_FACTOR
