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

from worldflux.core.config import WorldModelConfig
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

    _target_: str = f"{_PKG}.module.DreamerV3"
    family: str = "dreamerv3"

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
        for name in ("deter_dim", "hidden_dim", "stoch_dim", "classes", "depth", "units"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        missing = [k for k in LOSS_KEYS if k not in self.loss_scales]
        extra = [k for k in self.loss_scales if k not in LOSS_KEYS]
        if missing or extra:
            raise ConfigError(
                f"loss_scales needs exactly the keys {list(LOSS_KEYS)}; missing {missing}, "
                f"unknown {extra}"
            )
        if self.imag_length < 1:
            raise ConfigError(f"imag_length must be >= 1, got {self.imag_length}")
        if self.horizon <= 1:
            raise ConfigError(f"horizon must be > 1 (discount 1 - 1/horizon), got {self.horizon}")
        if not 0.0 <= self.lam <= 1.0:
            raise ConfigError(f"lam must be in [0, 1], got {self.lam}")
        if not 0.0 < self.slow_rate <= 1.0:
            raise ConfigError(f"slow_rate must be in (0, 1], got {self.slow_rate}")
        if not 0.0 <= self.retnorm_perclo < self.retnorm_perchi <= 100.0:
            raise ConfigError(
                "retnorm percentiles need 0 <= retnorm_perclo < retnorm_perchi <= 100, got "
                f"{self.retnorm_perclo}, {self.retnorm_perchi}"
            )
        blocks = int((self.dynamics or {}).get("blocks", 1))
        if self.deter_dim % blocks:
            raise ConfigError(
                f"deter_dim ({self.deter_dim}) must be divisible by dynamics.blocks ({blocks})"
            )
        bspace = int((self.decoder or {}).get("bspace", 0) or 0)
        if bspace and self.deter_dim % bspace:
            raise ConfigError(
                f"deter_dim ({self.deter_dim}) must be divisible by decoder.bspace ({bspace})"
            )
