"""Typed config of the DreamerV3 family (no torch imports).

Numbers follow ``dreamerv3/configs.yaml`` of danijar/dreamerv3 at commit ``e3f0224`` (the 2024
Nature version). The five width knobs of the official size presets are family fields
(``deter_dim``, ``hidden_dim``, ``classes``, ``depth``, ``units``); everything the official code
keeps per network (kernel sizes, layer counts, output scales, ...) lives in the component nodes
(``encoder``, ``dynamics``, ``decoder``, ``reward_head``, ``continue_head``, ``policy``, ``value``),
which the module builds with the family widths passed at build time.
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
    UNIT_OPEN_LOW,
    Range,
    check_range,
)
from worldflux.errors import ConfigError

_PKG = "worldflux.models.dreamerv3"
LOSS_KEYS = ("rec", "rew", "con", "dyn", "rep", "policy", "value", "repval")


def _component(target: str, **knobs: Any) -> Any:
    return field(default_factory=lambda: {"_target_": f"{_PKG}.{target}", **knobs})


@dataclass
class DreamerV3Config(WorldModelConfig):
    """Hyperparameters of DreamerV3 (Hafner et al., Nature 2025; arXiv:2301.04104v2).

    Defaults are the official defaults block (= ``size200m``).

    Attributes:
        deter_dim: size of the deterministic GRU state (``rssm.deter``).
        hidden_dim: width of the RSSM's hidden layers (``rssm.hidden``).
        stoch_dim: number of categorical latents (``rssm.stoch``).
        classes: classes per categorical latent (``rssm.classes``).
        depth: base channel count of the CNN encoder and decoder (``enc/dec.simple.depth``).
        units: width of the MLPs: vector encoder/decoder and all heads (``units``).
        loss_scales: weights of the loss terms ``rec, rew, con, dyn, rep, policy, value, repval``.
        lr, agc, opt_eps, beta1, beta2, momentum, warmup: the optimiser (``agent.opt``).
        imag_length: imagination horizon in steps.
        imag_last: start imagination from the last ``imag_last`` replay steps (0: all of them).
        horizon: return horizon; the discount is ``1 - 1 / horizon``.
        contdisc: fold the discount into the continue target (official default).
        lam: lambda of the lambda-returns.
        actent: actor entropy regulariser.
        slowreg: weight of the value regulariser toward the slow value network.
        slow_rate, slow_every: EMA rate and period of the slow value copy.
        retnorm_rate, retnorm_limit, retnorm_perclo, retnorm_perchi: return normalisation by the
            percentile range (EMA rate, lower limit of the scale, percentiles).
        reward_grad: let the reward loss shape the representation.
        repval_loss, repval_grad: value loss on replay states, and whether it shapes the
            representation.
        ac_grads: let the actor-critic losses reach the start states (official: off).
        batch_size, batch_length, train_ratio: data settings the training loop reads.
        encoder, dynamics, decoder, reward_head, continue_head, policy, value: component nodes.
        planner: a ``planner`` group node (``conf/planner/``): act by planning with it in the
            latent space; ``None`` (default) acts with the actor.
    """

    #: Observation/action settings of the official parameter counts (``meta.official_params``).
    REFERENCE_SETTINGS: ClassVar[dict[str, dict[str, Any]]] = {
        "image_discrete": {"obs_shape": [3, 64, 64], "action_dim": 6, "action_kind": "discrete"},
        "vector_continuous": {"obs_shape": [24], "action_dim": 6, "action_kind": "continuous"},
    }

    SUPPORTED_MODALITIES: ClassVar[tuple[str, ...]] = ("image", "vector")
    FIELD_RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(
            ("deter_dim", "hidden_dim", "stoch_dim", "classes", "depth", "units"), POSITIVE_INT
        ),
        **dict.fromkeys(("lr", "opt_eps", "retnorm_limit", "train_ratio"), POSITIVE),
        **dict.fromkeys(("agc", "warmup", "imag_last", "actent", "slowreg"), NON_NEGATIVE),
        "beta1": UNIT_OPEN_HIGH,
        "beta2": UNIT_OPEN_HIGH,
        "imag_length": POSITIVE_INT,
        "horizon": Range(1, low_open=True),
        "lam": UNIT,
        "slow_rate": UNIT_OPEN_LOW,
        "slow_every": POSITIVE_INT,
        "retnorm_rate": UNIT_OPEN_LOW,
        "retnorm_perclo": Range(0, 100),
        "retnorm_perchi": Range(0, 100),
        "batch_size": POSITIVE_INT,
        "batch_length": Range(2),  # lambda-returns need a next step
    }
    #: Ranges of the component knobs, checked in every component node that has the key.
    KNOB_RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(
            ("mults", "kernel", "blocks", "imglayers", "obslayers", "dynlayers"), POSITIVE_INT
        ),
        **dict.fromkeys(("layers", "bspace", "outscale", "free_nats"), NON_NEGATIVE),
        "unimix": UNIT,
        "bins": Range(2),
        "minstd": POSITIVE,
        "maxstd": POSITIVE,
    }

    _target_: str = f"{_PKG}.module.DreamerV3"
    family: str = "dreamerv3"
    phases: Any = field(default_factory=lambda: base_default("dreamerv3", "phases"))

    # widths (the knobs of the official size presets)
    deter_dim: int = 8192
    hidden_dim: int = 1024
    stoch_dim: int = 32
    classes: int = 64
    depth: int = 64
    units: int = 1024

    # losses
    loss_scales: dict[str, float] = field(
        default_factory=lambda: {
            "rec": 1.0,
            "rew": 1.0,
            "con": 1.0,
            "dyn": 1.0,
            "rep": 0.1,
            "policy": 1.0,
            "value": 1.0,
            "repval": 0.3,
        }
    )

    # optimiser (LaProp-style with adaptive gradient clipping)
    lr: float = 4e-5
    agc: float = 0.3
    opt_eps: float = 1e-20
    beta1: float = 0.9
    beta2: float = 0.999
    momentum: bool = True
    warmup: int = 1000

    # actor-critic
    imag_length: int = 15
    imag_last: int = 0
    horizon: int = 333
    contdisc: bool = True
    lam: float = 0.95
    actent: float = 3e-4
    slowreg: float = 1.0
    slow_rate: float = 0.02
    slow_every: int = 1
    retnorm_rate: float = 0.01
    retnorm_limit: float = 1.0
    retnorm_perclo: float = 5.0
    retnorm_perchi: float = 95.0
    reward_grad: bool = True
    repval_loss: bool = True
    repval_grad: bool = True
    ac_grads: bool = False

    # data (read by the training loop)
    batch_size: int = 16
    batch_length: int = 64
    train_ratio: float = 32.0

    # components
    encoder: Any = _component(
        "networks.SimpleEncoder",
        mults=[2, 3, 4, 4],
        layers=3,
        kernel=5,
        symlog=True,
        act="silu",
        norm="rms",
        strided=False,
    )
    dynamics: Any = _component(
        "rssm.RSSM",
        blocks=8,
        imglayers=2,
        obslayers=1,
        dynlayers=1,
        unimix=0.01,
        outscale=1.0,
        free_nats=1.0,
        absolute=False,
        act="silu",
        norm="rms",
    )
    decoder: Any = _component(
        "networks.SimpleDecoder",
        mults=[2, 3, 4, 4],
        layers=3,
        kernel=5,
        bspace=8,
        symlog=True,
        outscale=1.0,
        act="silu",
        norm="rms",
    )
    reward_head: Any = _component(
        "heads.TwoHotHead", layers=1, bins=255, outscale=0.0, act="silu", norm="rms"
    )
    continue_head: Any = _component(
        "heads.BinaryHead", layers=1, outscale=1.0, act="silu", norm="rms"
    )
    policy: Any = _component(
        "heads.PolicyHead",
        layers=3,
        minstd=0.1,
        maxstd=1.0,
        unimix=0.01,
        outscale=0.01,
        act="silu",
        norm="rms",
    )
    value: Any = _component(
        "heads.TwoHotHead", layers=3, bins=255, outscale=0.0, act="silu", norm="rms"
    )
    planner: Any = None

    @property
    def discount(self) -> float:
        """The per-step discount ``1 - 1 / horizon``."""
        return 1.0 - 1.0 / self.horizon

    def __post_init__(self) -> None:
        super().__post_init__()
        missing = [k for k in LOSS_KEYS if k not in self.loss_scales]
        extra = [k for k in self.loss_scales if k not in LOSS_KEYS]
        if missing or extra:
            raise ConfigError(
                f"loss_scales needs exactly the keys {list(LOSS_KEYS)}; missing {missing}, "
                f"unknown {extra}"
            )
        for key, scale in self.loss_scales.items():
            check_range(f"config field 'loss_scales.{key}'", scale, NON_NEGATIVE)
        if self.retnorm_perclo >= self.retnorm_perchi:
            raise ConfigError(
                "retnorm percentiles need retnorm_perclo < retnorm_perchi, got "
                f"{self.retnorm_perclo}, {self.retnorm_perchi}"
            )
        policy = self.policy or {}
        if policy.get("minstd", 0) > policy.get("maxstd", float("inf")):
            raise ConfigError(
                f"policy.minstd ({policy['minstd']}) must be <= policy.maxstd ({policy['maxstd']})"
            )
        blocks = (self.dynamics or {}).get("blocks", 1)
        if self.deter_dim % blocks:
            raise ConfigError(
                f"deter_dim ({self.deter_dim}) must be divisible by dynamics.blocks ({blocks})"
            )
        bspace = (self.decoder or {}).get("bspace", 0) or 0
        if bspace and self.deter_dim % bspace:
            raise ConfigError(
                f"deter_dim ({self.deter_dim}) must be divisible by decoder.bspace ({bspace})"
            )
