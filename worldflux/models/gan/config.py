"""Typed config of the GameGAN family (no torch imports).

Field names follow the options of nv-tlabs/GameGAN_code @ 1195c39 (``config.py``) where one
exists, in snake case: ``z`` is ``z_dim``, ``nfilterG``/``nfilterD``/``nfilterD_temp`` are
``nfilter_g``/``nfilter_d``/``nfilter_d_temporal``, ``config_temporal`` is ``temporal_window``,
``memory_h`` is ``memory_cells``, ``num_steps`` is ``batch_length``, ``LAMBDA``/``LAMBDA_temporal``
are ``r1_weight``/``r1_temporal_weight``, ``alpha_T`` is ``kernel_temperature``,
``base_temperature`` is ``map_temperature`` and ``temperature`` is ``mask_temperature``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from worldflux.core.config import WorldModelConfig, base_default
from worldflux.core.validation import NON_NEGATIVE, POSITIVE, POSITIVE_INT, Range
from worldflux.errors import ConfigError

GAN_LOSSES = ("hinge", "bce")


@dataclass
class GameGANConfig(WorldModelConfig):
    """Hyperparameters of GameGAN (Kim et al., CVPR 2020).

    Attributes:
        z_dim: size of the per-step noise ``z``.
        hidden_dim: LSTM hidden size of the dynamics engine.
        memory: turn on the memory module (``do_memory``).
        memory_dim, memory_cells: memory vector size and number of cells (a square number).
        memory_flip_actions: ``[[a, b], ...]``: action ``a`` shifts the memory attention with
            the mirrored kernel of action ``b`` (Pac-Man ``[[2, 1], [4, 3]]``, VizDoom ``[[0, 1]]``).
        memory_query_from_h: gate from the hidden state (``mem_use_h``) instead of its change.
        softmax_kernel, kernel_temperature: softmax on the memory shift kernel and its
            temperature.
        nfilter_g, nfilter_d, nfilter_d_temporal: widths of renderer, frame and temporal
            discriminators.
        bottom_width: side of the renderer's first feature map (8 residual, 7 simple blocks at 64).
        num_components: rendering components (1, or 2 with the memory module).
        simple_blocks: transposed-conv renderer and plain strided-conv discriminator.
        g_attention: self-attention after the last residual block of a one-component renderer.
        temporal_window: temporal discriminator design window (``config_temporal``).
        transition_dim: width of the action discriminator's transition features (256 in the
            reference, where it is fixed).
        fixed_v_dim, att_dim, spade_index: component vector size, attribute channels, SPADE block.
        sigmoid_maps, map_temperature, mask_temperature: rough-map squashing and temperatures.
        cycle_loss, rev_multiply_map: memory cycle loss, and masking its target by the fine mask.
        input_detach: stop gradients through the generated frame fed back as input.
        gan_loss: ``hinge`` (default) or ``bce`` (the reference's ``standard_gan_loss``).
        recon_loss_multiplier, rev_recon_loss_multiplier, gen_info_loss_multiplier,
            feature_loss_multiplier, alpha_loss_multiplier: loss weights (0 turns a term off).
        feature_l2: feature matching with MSE instead of L1.
        r1_weight, r1_temporal_weight: R1 penalty weights of the frame/action and temporal parts.
        warm_up, min_warm_up, warm_up_decay_updates: ground-truth frames fed at the start of each
            training rollout, decaying linearly (rounded up) to ``min_warm_up`` over
            ``warm_up_decay_updates`` updates (the reference decays over epochs).
        lr, lr_d, graphic_lr_scale: Adam learning rates (betas 0, 0.9 in the phases).
        batch_size, batch_length: sequences per update and frames per sequence (``num_steps``).
        train_ratio: replayed steps per environment step when training online.
    """

    REFERENCE_SETTINGS: ClassVar[dict[str, dict[str, Any]]] = {
        "action10": {"obs_shape": [3, 64, 64], "action_dim": 10},
        "action5": {"obs_shape": [3, 64, 64], "action_dim": 5},
    }
    SUPPORTED_MODALITIES: ClassVar[tuple[str, ...]] = ("image",)
    FIELD_RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(
            (
                "z_dim",
                "hidden_dim",
                "memory_dim",
                "memory_cells",
                "nfilter_g",
                "nfilter_d",
                "nfilter_d_temporal",
                "bottom_width",
                "temporal_window",
                "transition_dim",
                "fixed_v_dim",
                "att_dim",
                "batch_size",
            ),
            POSITIVE_INT,
        ),
        "num_components": Range(1, 2),
        "batch_length": Range(3),
        "spade_index": Range(-1),
        **dict.fromkeys(("warm_up", "min_warm_up", "warm_up_decay_updates"), NON_NEGATIVE),
        **dict.fromkeys(
            (
                "kernel_temperature",
                "map_temperature",
                "mask_temperature",
                "lr",
                "lr_d",
                "train_ratio",
            ),
            POSITIVE,
        ),
        **dict.fromkeys(
            (
                "recon_loss_multiplier",
                "rev_recon_loss_multiplier",
                "gen_info_loss_multiplier",
                "feature_loss_multiplier",
                "alpha_loss_multiplier",
                "r1_weight",
                "r1_temporal_weight",
                "graphic_lr_scale",
            ),
            NON_NEGATIVE,
        ),
    }

    _target_: str = "worldflux.models.gan.module.GameGAN"
    family: str = "gan"
    phases: Any = field(default_factory=lambda: base_default("gan", "phases"))
    obs_shape: list[int] = field(default_factory=lambda: [3, 64, 64])
    action_dim: int = 10
    action_kind: str = "discrete"

    # dynamics engine and memory
    z_dim: int = 32
    hidden_dim: int = 512
    memory: bool = False
    memory_dim: int = 512
    memory_cells: int = 441
    memory_flip_actions: list[list[int]] = field(default_factory=list)
    memory_query_from_h: bool = False
    softmax_kernel: bool = False
    kernel_temperature: float = 0.1
    input_detach: bool = True

    # rendering engine and discriminator
    nfilter_g: int = 64
    nfilter_d: int = 16
    nfilter_d_temporal: int = 64
    bottom_width: int = 8
    num_components: int = 1
    simple_blocks: bool = False
    g_attention: bool = True
    temporal_window: int = 18
    transition_dim: int = 256
    fixed_v_dim: int = 512
    att_dim: int = 512
    spade_index: int = -1
    sigmoid_maps: bool = False
    map_temperature: float = 0.1
    mask_temperature: float = 1.0

    # losses
    gan_loss: str = "hinge"
    recon_loss_multiplier: float = 0.05
    rev_recon_loss_multiplier: float = 0.05
    gen_info_loss_multiplier: float = 30.0
    feature_loss_multiplier: float = 10.0
    feature_l2: bool = False
    alpha_loss_multiplier: float = 0.0
    cycle_loss: bool = False
    rev_multiply_map: bool = False
    r1_weight: float = 1.0
    r1_temporal_weight: float = 10.0

    # training
    warm_up: int = 10
    min_warm_up: int = 0
    warm_up_decay_updates: int = 100000
    lr: float = 1e-4
    lr_d: float = 1e-4
    graphic_lr_scale: float = 1.0
    batch_size: int = 64
    batch_length: int = 32
    train_ratio: float = 512.0

    def __post_init__(self) -> None:
        super().__post_init__()
        from worldflux.models.gan.sizes import check_sizes

        if self.gan_loss not in GAN_LOSSES:
            raise ConfigError(f"gan_loss must be one of {GAN_LOSSES}, got {self.gan_loss!r}")
        if self.action_kind != "discrete":
            raise ConfigError(
                "GameGAN needs discrete actions (its info loss classifies the action); "
                f"action_kind must be 'discrete', got {self.action_kind!r}"
            )
        if not self.memory:
            used = [
                name
                for name, on in (
                    ("num_components", self.num_components > 1),
                    ("cycle_loss", self.cycle_loss),
                    ("alpha_loss_multiplier", self.alpha_loss_multiplier > 0),
                    ("memory_flip_actions", bool(self.memory_flip_actions)),
                )
                if on
            ]
            if used:
                raise ConfigError(
                    f"{used[0]} needs the memory module, but memory is false; set memory=true "
                    f"(a memory preset such as gan:vizdoom_memory) or leave {used[0]} at its "
                    "default"
                )
        if self.cycle_loss and self.num_components != 2:
            raise ConfigError(
                f"cycle_loss renders the static component alone, so it needs num_components=2, "
                f"got {self.num_components}"
            )
        for pair in self.memory_flip_actions:
            if len(pair) != 2 or not all(0 <= int(a) < self.action_dim for a in pair):
                raise ConfigError(
                    "memory_flip_actions must hold [action, mirrored action] pairs of indices "
                    f"in [0, {self.action_dim}), got {pair!r}"
                )
        if self.min_warm_up > self.warm_up:
            raise ConfigError(
                f"min_warm_up must be <= warm_up ({self.warm_up}), got {self.min_warm_up}"
            )
        if self.warm_up > self.batch_length - 1:
            raise ConfigError(
                f"warm_up must be <= batch_length - 1 = {self.batch_length - 1} (frames fed before "
                f"the last prediction), got {self.warm_up}"
            )
        check_sizes(self)
