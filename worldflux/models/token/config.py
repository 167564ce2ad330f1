"""Typed config of the token family, IRIS (no torch imports).

Field names follow ``config/`` of eloialonso/iris (commit ``24326aa``) where one exists:
``tokenizer/default.yaml`` (``vocab_size``, ``embed_dim``, the encoder/decoder knobs),
``world_model/default.yaml`` (``max_blocks``, ``num_layers``, ``num_heads``, ``embed_dim`` here
``wm_embed_dim``, the dropouts) and ``trainer.yaml`` (``training.*``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from worldflux.core.config import WorldModelConfig, base_default
from worldflux.core.validation import (
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    UNIT,
    UNIT_OPEN_HIGH,
    Range,
)
from worldflux.errors import ConfigError

_PKG = "worldflux.models.token"


def _component(path: str) -> Any:
    return field(default_factory=lambda: {"_target_": f"{_PKG}.{path}"})


@dataclass
class TokenConfig(WorldModelConfig):
    """Hyperparameters of IRIS (Micheli, Alonso & Fleuret, ICLR 2023).

    Attributes:
        vocab_size: codebook size (token ids ``0 .. vocab_size - 1``).
        embed_dim: codebook vector width.
        ch, ch_mult, num_res_blocks, attn_resolutions, z_channels, dropout: the VQ
            encoder/decoder (taming-transformers layout); ``len(ch_mult) - 1`` halvings map an
            ``H x H`` frame to ``(H / 2^(len-1))^2`` tokens.
        norm_groups: GroupNorm groups of the encoder/decoder (32, taming's constant).
        max_blocks: context of the GPT in steps (blocks of ``tokens + 1`` tokens).
        num_layers, num_heads, wm_embed_dim: GPT depth, heads and width.
        embed_pdrop, resid_pdrop, attn_pdrop: GPT dropouts.
        ac_channels: channels of the actor-critic's four convolutions.
        lstm_dim: the actor-critic's LSTM cell width.
        commitment_beta: weight of the encoder's commitment term (both VQ terms are kept).
        perceptual_weight: weight of the LPIPS term (0 turns LPIPS off).
        lpips_weights: a local LPIPS file (linear heads, optionally VGG16 too); ``None`` searches
            the IRIS and torchvision caches and trains without the term when nothing is found.
        imagine_horizon: imagined steps per actor-critic update.
        gamma, lambda_, entropy_weight: lambda-returns and the policy's entropy bonus.
        lr: learning rate of every phase; ``wm_weight_decay``: AdamW decay of the GPT's Linear
            weights; ``max_grad_norm``: gradient-norm clip of every phase.
        tokenizer_batch_size, wm_batch_size, ac_batch_size, burn_in: the phases' batches
            (``batch_length`` is the world model's 20 steps plus one: the replay stores the action
            that led to a step, IRIS the action taken at it).
        tokenizer_start, wm_start, ac_start: environment steps before each phase starts: the
            reference trains after epoch ``5``, ``25`` and ``50`` of 200 collected steps each,
            i.e. from step ``(epochs + 1) * 200``.
        batch_size, batch_length, train_ratio: the default batch and replay ratio (one update of
            each due phase per environment step, as the reference's 200 steps per epoch).
        tokenizer, world_model, actor_critic: component nodes.
    """

    REFERENCE_SETTINGS: ClassVar[dict[str, dict[str, Any]]] = {
        "atari_4": {"obs_shape": [3, 64, 64], "action_dim": 4},
        "atari_18": {"obs_shape": [3, 64, 64], "action_dim": 18},
    }
    SUPPORTED_MODALITIES: ClassVar[tuple[str, ...]] = ("image",)
    FIELD_RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(
            (
                "vocab_size",
                "embed_dim",
                "ch",
                "ch_mult",
                "num_res_blocks",
                "z_channels",
                "norm_groups",
                "max_blocks",
                "num_layers",
                "num_heads",
                "wm_embed_dim",
                "ac_channels",
                "lstm_dim",
                "imagine_horizon",
                "tokenizer_batch_size",
                "wm_batch_size",
                "ac_batch_size",
                "batch_size",
                "batch_length",
            ),
            POSITIVE_INT,
        ),
        **dict.fromkeys(("dropout", "embed_pdrop", "resid_pdrop", "attn_pdrop"), UNIT_OPEN_HIGH),
        **dict.fromkeys(("gamma", "lambda_"), UNIT),
        **dict.fromkeys(("lr", "max_grad_norm", "train_ratio"), POSITIVE),
        **dict.fromkeys(
            (
                "commitment_beta",
                "perceptual_weight",
                "entropy_weight",
                "wm_weight_decay",
                "burn_in",
                "tokenizer_start",
                "wm_start",
                "ac_start",
                "attn_resolutions",
            ),
            NON_NEGATIVE,
        ),
    }

    _target_: str = f"{_PKG}.module.Token"
    family: str = "token"
    phases: Any = field(default_factory=lambda: base_default("token", "phases"))
    obs_shape: list[int] = field(default_factory=lambda: [3, 64, 64])
    action_dim: int = 4
    action_kind: str = "discrete"

    # tokenizer (config/tokenizer/default.yaml)
    vocab_size: int = 512
    embed_dim: int = 512
    ch: int = 64
    ch_mult: list[int] = field(default_factory=lambda: [1, 1, 1, 1, 1])
    num_res_blocks: int = 2
    attn_resolutions: list[int] = field(default_factory=lambda: [8, 16])
    z_channels: int = 512
    dropout: float = 0.0
    norm_groups: int = 32
    # world model (config/world_model/default.yaml)
    max_blocks: int = 20
    num_layers: int = 10
    num_heads: int = 4
    wm_embed_dim: int = 256
    embed_pdrop: float = 0.1
    resid_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    # actor-critic (src/models/actor_critic.py)
    ac_channels: list[int] = field(default_factory=lambda: [32, 32, 64, 64])
    lstm_dim: int = 512

    # losses (src/models/*.py compute_loss, config/trainer.yaml training.actor_critic)
    commitment_beta: float = 1.0
    perceptual_weight: float = 1.0
    lpips_weights: str | None = None
    imagine_horizon: int = 20
    gamma: float = 0.995
    lambda_: float = 0.95
    entropy_weight: float = 0.001

    # optimisation and schedule (config/trainer.yaml training.*)
    lr: float = 1e-4
    wm_weight_decay: float = 0.01
    max_grad_norm: float = 10.0
    tokenizer_batch_size: int = 256
    wm_batch_size: int = 64
    ac_batch_size: int = 64
    burn_in: int = 20
    tokenizer_start: int = 1200
    wm_start: int = 5200
    ac_start: int = 10200
    batch_size: int = 64
    batch_length: int = 21
    train_ratio: float = 1344.0

    # components
    tokenizer: Any = _component("tokenizer.Tokenizer")
    world_model: Any = _component("gpt.TokenWorldModelNet")
    actor_critic: Any = _component("actor_critic.ActorCritic")

    def __post_init__(self) -> None:
        super().__post_init__()
        c, h, w = self.obs_shape
        down = 2 ** (len(self.ch_mult) - 1)
        if c != 3 or h != w or h % down:
            raise ConfigError(
                f"obs_shape must be [3, H, H] with H divisible by 2**(len(ch_mult) - 1) = {down}, "
                f"got {self.obs_shape}"
            )
        widths = [self.ch * m for m in self.ch_mult]
        if any(w % self.norm_groups for w in widths):
            raise ConfigError(
                f"every encoder width ch * ch_mult = {widths} must be divisible by "
                f"norm_groups={self.norm_groups}"
            )
        pool = 2 ** len(self.ac_channels)
        if h % pool:
            raise ConfigError(
                f"obs_shape side {h} must be divisible by 2**len(ac_channels) = {pool} (one "
                "max-pool per actor-critic convolution)"
            )
        if self.wm_embed_dim % self.num_heads:
            raise ConfigError(
                f"wm_embed_dim={self.wm_embed_dim} must be divisible by num_heads={self.num_heads}"
            )
        if self.action_kind != "discrete":
            raise ConfigError(
                f"action_kind must be 'discrete' (IRIS tokenises actions), got {self.action_kind!r}"
            )
        if self.batch_length < 2:
            raise ConfigError(f"batch_length must be >= 2, got {self.batch_length}")

    @property
    def tokens_per_frame(self) -> int:
        """Observation tokens of one frame (16 for 64x64 frames and five levels)."""
        side = self.obs_shape[1] // 2 ** (len(self.ch_mult) - 1)
        return side * side

    @property
    def tokens_per_block(self) -> int:
        """Tokens of one step: the frame's tokens and one action token."""
        return self.tokens_per_frame + 1
