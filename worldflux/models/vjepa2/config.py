"""Typed config of the V-JEPA 2 family (no torch imports).

Defaults are V-JEPA 2-AC as released (facebookresearch/vjepa2 @ c2963a4,
``configs/train/vitg16/droid-256px-8f.yaml``): a ViT-g/16 encoder at 256 px and the
24-block action-conditioned predictor over 7-d actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from worldflux.core.config import WorldModelConfig, base_default
from worldflux.core.validation import (
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    UNIT_OPEN_LOW,
    Range,
)
from worldflux.errors import ConfigError

_NETWORKS = "worldflux.models.vjepa2.networks"


@dataclass
class VJEPA2Config(WorldModelConfig):
    """Hyperparameters of :class:`~worldflux.models.vjepa2.module.VJEPA2` (the action-conditioned
    stage) and :class:`~worldflux.models.vjepa2.module.VJEPA2Pretrain` (masked pretraining).

    Attributes:
        patch_size, tubelet_size: token extent in pixels and frames (16 and 2).
        enc_dim, enc_depth, enc_heads, enc_mlp_dim: the encoder ViT.
        pred_dim, pred_depth, pred_heads, pred_mlp_dim: the predictor (AC or masked).
        num_mask_tokens: mask tokens of the masked predictor (2 mask generators x 3 datasets).
        mask_num_blocks, mask_scales: blocks and spatial scale of each mask generator.
        mask_aspect_ratio: aspect-ratio range of the mask blocks.
        ema_momentum: momentum of the target encoder (pretraining).
        auto_steps: rollout length of the AC loss (1-step teacher forcing + ``auto_steps`` rollout).
        normalize_reps: layer-normalise encoder features and predictions (AC stage, planning).
        loss_exp: exponent of the ``|pred - target| ** p / p`` loss (1: L1).
        init_std: truncated-normal initialisation scale.
        lr, warmup, weight_decay: AdamW learning rate, linear warm-up steps, decoupled decay.
        start_lr, anneal, total_steps, final_lr: the reference's warm-up / constant / anneal
            schedule (``WSDSchedule`` of the AC stage): linear from ``start_lr`` to ``lr`` over
            ``warmup`` steps, ``lr``, then linear to ``final_lr`` over the last ``anneal`` of
            ``total_steps`` steps (``anneal: 0``: no decay, as the pretraining configs' cosine
            with ``final_lr == lr``).
        batch_size, batch_length, train_ratio: replay batches (``batch_length`` frames per clip).
        weights: optional local path of an official checkpoint (``encoder`` / ``target_encoder``
            and ``predictor`` state dicts) loaded at build time.
        encoder_weights: optional local path of an official-layout checkpoint whose encoder
            alone is loaded (a pretraining checkpoint handed to the AC stage).
        encoder, predictor: component nodes; planner: the CEM planner node.
    """

    REFERENCE_SETTINGS: ClassVar[dict[str, dict[str, Any]]] = {
        "droid": {"obs_shape": [3, 256, 256], "action_dim": 7},
    }
    SUPPORTED_MODALITIES: ClassVar[tuple[str, ...]] = ("image", "video")
    FIELD_RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(
            (
                "patch_size",
                "tubelet_size",
                "enc_dim",
                "enc_depth",
                "enc_heads",
                "enc_mlp_dim",
                "pred_dim",
                "pred_depth",
                "pred_heads",
                "pred_mlp_dim",
                "num_mask_tokens",
                "auto_steps",
                "batch_size",
                "batch_length",
            ),
            POSITIVE_INT,
        ),
        "action_dim": Range(2),
        "ema_momentum": Range(0, 1, high_open=True),
        "loss_exp": POSITIVE,
        "init_std": POSITIVE,
        "lr": POSITIVE,
        "warmup": NON_NEGATIVE,
        "start_lr": NON_NEGATIVE,
        "anneal": NON_NEGATIVE,
        "total_steps": NON_NEGATIVE,
        "final_lr": NON_NEGATIVE,
        "weight_decay": NON_NEGATIVE,
        "train_ratio": POSITIVE,
    }
    KNOB_RANGES: ClassVar[dict[str, Range]] = {
        "horizon": POSITIVE_INT,
        "iterations": POSITIVE_INT,
        "num_samples": Range(2),
        "num_elites": Range(2),
        "init_std": POSITIVE,
        "momentum_mean": Range(0, 1, high_open=True),
        "momentum_std": Range(0, 1, high_open=True),
        "min_std": UNIT_OPEN_LOW,
    }

    _target_: str = "worldflux.models.vjepa2.module.VJEPA2"
    family: str = "vjepa2"
    obs_shape: list[int] = field(default_factory=lambda: [3, 256, 256])
    action_dim: int = 7
    action_kind: str = "continuous"
    phases: Any = field(default_factory=lambda: base_default("vjepa2", "phases"))

    patch_size: int = 16
    tubelet_size: int = 2
    enc_dim: int = 1408
    enc_depth: int = 40
    enc_heads: int = 22
    enc_mlp_dim: int = 6144
    pred_dim: int = 1024
    pred_depth: int = 24
    pred_heads: int = 16
    pred_mlp_dim: int = 4096
    num_mask_tokens: int = 6
    mask_num_blocks: list[int] = field(default_factory=lambda: [8, 2])
    mask_scales: list[float] = field(default_factory=lambda: [0.15, 0.7])
    mask_aspect_ratio: list[float] = field(default_factory=lambda: [0.75, 1.5])
    ema_momentum: float = 0.99925
    auto_steps: int = 2
    normalize_reps: bool = True
    loss_exp: float = 1.0
    init_std: float = 0.02

    lr: float = 4.25e-4
    warmup: int = 4500
    start_lr: float = 7.5e-5
    anneal: int = 4500
    total_steps: int = 94500
    final_lr: float = 0.0
    weight_decay: float = 0.04
    batch_size: int = 8
    batch_length: int = 8
    train_ratio: float = 16.0
    weights: Optional[str] = None
    encoder_weights: Optional[str] = None

    encoder: Any = field(default_factory=lambda: {"_target_": f"{_NETWORKS}.VideoViT"})
    predictor: Any = field(default_factory=lambda: {"_target_": f"{_NETWORKS}.ACPredictor"})
    planner: Any = field(
        default_factory=lambda: {
            "_target_": "worldflux.models.vjepa2.planning.VJEPA2CEM",
            "horizon": 2,
            "iterations": 10,
            "num_samples": 400,
            "num_elites": 10,
            "init_std": 0.05,
            "min_std": 1.0e-6,
            "max_std": 2.0,
            "momentum_mean": 0.15,
            "momentum_std": 0.15,
            "action_low": -0.05,
            "action_high": 0.05,
        }
    )

    @property
    def warmup_start_scale(self) -> float:
        """``start_lr`` as a multiple of ``lr`` (the phase schedule works in multiples)."""
        return self.start_lr / self.lr

    @property
    def final_lr_scale(self) -> float:
        """``final_lr`` as a multiple of ``lr``."""
        return self.final_lr / self.lr

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.anneal and self.total_steps < self.warmup + self.anneal:
            raise ConfigError(
                f"total_steps={self.total_steps} must be >= warmup + anneal "
                f"({self.warmup} + {self.anneal}) when anneal > 0"
            )
        for name, spec in self.modalities().items():
            h, w = spec["shape"][-2:]
            if h % self.patch_size or w % self.patch_size:
                raise ConfigError(
                    f"observation {name!r}: frames of {h}x{w} pixels must be divisible by "
                    f"patch_size={self.patch_size}"
                )
            if spec["kind"] == "video" and spec["shape"][0] < self.tubelet_size:
                raise ConfigError(
                    f"observation {name!r}: clips of {spec['shape'][0]} frames are shorter than "
                    f"tubelet_size={self.tubelet_size}"
                )
        for name, heads in (("enc", self.enc_heads), ("pred", self.pred_heads)):
            dim = getattr(self, f"{name}_dim")
            if dim % heads or dim // heads < 6:
                raise ConfigError(
                    f"{name}_dim={dim} must be divisible by {name}_heads={heads} with a head "
                    "width >= 6 (3-D rotary positions)"
                )
        if not (len(self.mask_num_blocks) == len(self.mask_scales) >= 1):
            raise ConfigError(
                "mask_num_blocks and mask_scales need one entry per mask generator, got "
                f"{self.mask_num_blocks} and {self.mask_scales}"
            )
        if any(n < 1 for n in self.mask_num_blocks) or any(not 0 < s < 1 for s in self.mask_scales):
            raise ConfigError(
                f"mask_num_blocks must be >= 1 and mask_scales in (0, 1), got "
                f"{self.mask_num_blocks} and {self.mask_scales}"
            )
        lo_hi = self.mask_aspect_ratio
        if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1]:
            raise ConfigError(f"mask_aspect_ratio must be [low, high] > 0, got {lo_hi}")
