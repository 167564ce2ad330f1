"""Typed config of the diffusion family (DIAMOND; no torch imports).

Defaults are eloialonso/diamond @ 5bcd159 ``config/agent/default.yaml`` and ``config/trainer.yaml``
(Atari 100k, 64x64x3 frames). Component slots (``denoiser``, ``rew_end_model``, ``actor_critic``)
are ``_target_`` nodes holding their widths; image and action sizes are passed at build time.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

from worldflux.core.config import WorldModelConfig, base_default
from worldflux.core.validation import NON_NEGATIVE, POSITIVE, POSITIVE_INT, UNIT, Range
from worldflux.errors import ConfigError

_PKG = "worldflux.models.diffusion"
SAMPLERS = ("euler", "heun")


def _component(target: str, **knobs: Any) -> Any:
    return field(default_factory=lambda: {"_target_": f"{_PKG}.{target}", **knobs})


@dataclass
class DiffusionConfig(WorldModelConfig):
    """Hyperparameters of DIAMOND (Alonso et al., NeurIPS 2024).

    Attributes:
        num_steps_conditioning: past frames and actions the denoiser and the world-model
            environment condition on (``n``).
        sigma_data, sigma_offset_noise: EDM data scale and offset-noise standard deviation.
        train_sigma_loc, train_sigma_scale, train_sigma_min, train_sigma_max: training noise
            levels ``exp(N(loc, scale^2))`` clipped to ``[min, max]``.
        sampler: ``"euler"`` or ``"heun"`` (EDM's first- and second-order samplers).
        num_steps_denoising, sigma_min, sigma_max, rho: the sampler's noise schedule.
        s_churn, s_tmin, s_tmax, s_noise: stochastic churn (0: deterministic sampler).
        horizon: imagination horizon of the actor-critic phase.
        gamma, lambda_: discount and lambda of the lambda-returns.
        weight_value_loss, weight_entropy_loss: actor-critic loss weights.
        epsilon: probability of a uniformly random action when acting outside ``eval_mode``.
        lr, adam_eps: AdamW learning rate and epsilon of every phase.
        weight_decay: decoupled decay of the denoiser and reward/termination phases (Linear,
            convolution and LSTM weights only; embeddings, biases and norms get none).
        denoiser_clip, rew_end_clip, actor_critic_clip: gradient-norm clips per phase.
        warmup: linear learning-rate warm-up steps per phase.
        batch_size, batch_length: the denoiser's batch, also the train ratio's unit; a sequence
            of ``n + 1 + k`` frames trains on ``k`` autoregressive steps (reference: ``k = 1``).
        rew_end_batch_length: frames per reward/termination sequence (horizon + n).
        train_ratio: replayed steps per environment step (reference: 400 updates of each
            phase per 100 environment steps, at ``batch_size x batch_length``).
        denoiser, rew_end_model, actor_critic: component nodes.
    """

    REFERENCE_SETTINGS: ClassVar[dict[str, dict[str, Any]]] = {
        "atari_4_actions": {"obs_shape": [3, 64, 64], "action_dim": 4},
        "atari_18_actions": {"obs_shape": [3, 64, 64], "action_dim": 18},
    }
    SUPPORTED_MODALITIES: ClassVar[tuple[str, ...]] = ("image",)
    FIELD_RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(
            (
                "num_steps_conditioning",
                "num_steps_denoising",
                "horizon",
                "batch_size",
                "batch_length",
                "rew_end_batch_length",
            ),
            POSITIVE_INT,
        ),
        **dict.fromkeys(
            (
                "sigma_data",
                "train_sigma_scale",
                "train_sigma_min",
                "train_sigma_max",
                "sigma_min",
                "sigma_max",
                "rho",
                "lr",
                "adam_eps",
                "denoiser_clip",
                "rew_end_clip",
                "actor_critic_clip",
                "train_ratio",
            ),
            POSITIVE,
        ),
        **dict.fromkeys(
            (
                "sigma_offset_noise",
                "s_churn",
                "s_tmin",
                "s_noise",
                "weight_value_loss",
                "weight_entropy_loss",
                "weight_decay",
                "warmup",
            ),
            NON_NEGATIVE,
        ),
        "train_sigma_loc": Range(),
        "s_tmax": NON_NEGATIVE,
        "gamma": UNIT,
        "epsilon": UNIT,
        "lambda_": UNIT,
    }
    KNOB_RANGES: ClassVar[dict[str, Range]] = {
        "cond_channels": POSITIVE_INT,
        "lstm_dim": POSITIVE_INT,
    }

    _target_: str = f"{_PKG}.module.Diffusion"
    family: str = "diffusion"
    phases: Any = field(default_factory=lambda: base_default("diffusion", "phases"))
    obs_shape: list[int] = field(default_factory=lambda: [3, 64, 64])
    action_dim: int = 4
    action_kind: str = "discrete"

    # denoiser and EDM
    num_steps_conditioning: int = 4
    sigma_data: float = 0.5
    sigma_offset_noise: float = 0.3
    train_sigma_loc: float = -0.4
    train_sigma_scale: float = 1.2
    train_sigma_min: float = 2e-3
    train_sigma_max: float = 20.0

    # sampler (world_model_env.diffusion_sampler)
    sampler: str = "euler"
    num_steps_denoising: int = 3
    sigma_min: float = 2e-3
    sigma_max: float = 5.0
    rho: float = 7.0
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = math.inf
    s_noise: float = 1.0

    # actor-critic in imagination
    horizon: int = 15
    gamma: float = 0.985
    lambda_: float = 0.95
    weight_value_loss: float = 1.0
    weight_entropy_loss: float = 0.001
    epsilon: float = 0.01

    # optimisation
    lr: float = 1e-4
    adam_eps: float = 1e-8
    weight_decay: float = 0.01
    denoiser_clip: float = 1.0
    rew_end_clip: float = 100.0
    actor_critic_clip: float = 100.0
    warmup: int = 100
    batch_size: int = 32
    batch_length: int = 6
    rew_end_batch_length: int = 19
    train_ratio: float = 768.0

    denoiser: Any = _component(
        "denoiser.Denoiser",
        cond_channels=256,
        channels=[64, 64, 64, 64],
        depths=[2, 2, 2, 2],
        attn_depths=[False, False, False, False],
    )
    rew_end_model: Any = _component(
        "agent.RewEndModel",
        lstm_dim=512,
        cond_channels=128,
        channels=[32, 32, 32, 32],
        depths=[2, 2, 2, 2],
        attn_depths=[False, False, False, False],
    )
    actor_critic: Any = _component(
        "agent.ActorCritic", lstm_dim=512, channels=[32, 32, 64, 64], down=[True, True, True, True]
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.action_kind != "discrete":
            raise ConfigError(
                f"DIAMOND takes discrete actions (action_kind='discrete'), got {self.action_kind!r}"
            )
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if not self.sigma_min < self.sigma_max:
            raise ConfigError(
                f"sigma_min must be < sigma_max, got sigma_min={self.sigma_min}, "
                f"sigma_max={self.sigma_max}"
            )
        if not self.train_sigma_min < self.train_sigma_max:
            raise ConfigError(
                f"train_sigma_min must be < train_sigma_max, got {self.train_sigma_min} and "
                f"{self.train_sigma_max}"
            )
        if self.batch_length < self.num_steps_conditioning + 1:
            raise ConfigError(
                f"batch_length must be >= num_steps_conditioning + 1 = "
                f"{self.num_steps_conditioning + 1} (context frames and one target), got "
                f"{self.batch_length}"
            )
        if self.rew_end_batch_length < 2:
            raise ConfigError(
                f"rew_end_batch_length must be >= 2 (one transition), got {self.rew_end_batch_length}"
            )
        reads = self.horizon + self.num_steps_conditioning
        if self.rew_end_batch_length < reads:
            warnings.warn(
                f"rew_end_batch_length={self.rew_end_batch_length} is shorter than horizon + "
                f"num_steps_conditioning = {reads}, the sequence the reward/termination model reads "
                f"in imagination; it will be trained on shorter sequences than it is used on "
                f"(DIAMOND trains on horizon + n; set model.rew_end_batch_length={reads})",
                UserWarning,
                stacklevel=2,
            )
        if self.s_tmin > self.s_tmax:
            raise ConfigError(f"s_tmin must be <= s_tmax, got {self.s_tmin} > {self.s_tmax}")
        if len(self.obs_shape) == 3 and self.obs_shape[1] != self.obs_shape[2]:
            raise ConfigError(
                f"obs_shape must be square (C, S, S) like the reference's frames, got {self.obs_shape}"
            )

    @property
    def sampler_order(self) -> int:
        """1 for Euler, 2 for Heun."""
        return SAMPLERS.index(self.sampler) + 1
