"""Typed config of the ``ssm`` family, R2I (no torch imports).

Numbers follow ``recall2imagine/configs.yaml`` of chandar-lab/Recall2Imagine at commit ``6e317e7``
(the ``defaults`` block with the ``mmaze`` overrides). The width knobs are family fields
(``deter_dim``, ``units``, ``ssm_state``, ``ssm_layers``, ``stoch_dim``, ``classes``, ``depth``,
``mlp_units``, ``mlp_layers``, ``head_units``, ``head_layers``); everything the reference keeps per
network lives in the component nodes, which the module builds with these widths.
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

_PKG = "worldflux.models.ssm"
LOSS_KEYS = ("rec", "reward", "cont", "dyn", "rep", "actor", "critic", "slowreg")


def _component(target: str, **knobs: Any) -> Any:
    return field(default_factory=lambda: {"_target_": f"{_PKG}.{target}", **knobs})


@dataclass
class SSMConfig(WorldModelConfig):
    """Hyperparameters of R2I (Samsami, Zholus, Rajendran, Chandar, ICLR 2024).

    Defaults are the reference's ``mmaze`` setting (= ``ssm:base``).

    Attributes:
        deter_dim: size of the deterministic state, the SSM output projection (``rssm.deter``).
        units: width of the SSM layers and of the RSSM's dense layers (``rssm.units``).
        ssm_state: state size ``P`` of each S5 layer (``rssm.hidden``).
        ssm_layers: number of stacked S5 layers (``ssm.n_layers``).
        stoch_dim, classes: categorical latents and classes per latent.
        depth: base channels of the CNN encoder/decoder (``cnn_depth``).
        mlp_units, mlp_layers: vector encoder/decoder MLP (``encoder/decoder.mlp_*``).
        head_units, head_layers: reward, continue, actor and critic MLPs (``*.units/layers``).
        ac_inputs: state parts the actor and critic read (``actor.inputs``).
        loss_scales: weights of ``rec, reward, cont, dyn, rep, actor, critic, slowreg``.
        model_lr, model_eps, model_clip, model_wd, ssm_lr: the world-model Adam (``model_opt``,
            SSM parameters in ``model_opt_groups.group1``: own lr, no weight decay).
        actor_lr, actor_eps, actor_clip, critic_lr, critic_eps, critic_clip: the other two Adams.
        imag_horizon, horizon, return_lambda, actent: imagination and returns.
        slow_fraction, slow_every: EMA of the slow critic.
        retnorm_decay, retnorm_max, retnorm_perclo, retnorm_perchi: return normalisation.
        batch_size, batch_length, train_ratio: data settings the training loop reads.
    """

    #: Observation/action settings of the official parameter counts (``meta.official_params``).
    REFERENCE_SETTINGS: ClassVar[dict[str, dict[str, Any]]] = {
        "mmaze": {"obs_shape": [3, 64, 64], "action_dim": 6, "action_kind": "discrete"},
        "popgym_repeat_previous": {"obs_shape": [4], "action_dim": 4, "action_kind": "discrete"},
    }
    SUPPORTED_MODALITIES: ClassVar[tuple[str, ...]] = ("image", "vector")
    FIELD_RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(
            (
                "deter_dim",
                "units",
                "ssm_state",
                "ssm_layers",
                "stoch_dim",
                "classes",
                "depth",
                "mlp_units",
                "head_units",
                "imag_horizon",
                "slow_every",
                "batch_size",
            ),
            POSITIVE_INT,
        ),
        **dict.fromkeys(("mlp_layers", "head_layers"), NON_NEGATIVE),
        **dict.fromkeys(
            ("model_lr", "ssm_lr", "actor_lr", "critic_lr", "model_eps", "actor_eps"), POSITIVE
        ),
        **dict.fromkeys(("critic_eps", "retnorm_max", "train_ratio"), POSITIVE),
        **dict.fromkeys(("model_clip", "actor_clip", "critic_clip"), POSITIVE),
        **dict.fromkeys(("model_wd", "actent"), NON_NEGATIVE),
        "horizon": Range(1, low_open=True),
        "return_lambda": UNIT,
        "slow_fraction": UNIT_OPEN_LOW,
        "retnorm_decay": UNIT_OPEN_HIGH,
        "retnorm_perclo": Range(0, 100),
        "retnorm_perchi": Range(0, 100),
        "batch_length": Range(2),  # lambda-returns and the scan need two steps
    }
    #: Ranges of the component knobs, checked in every component node that has the key.
    KNOB_RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(("blocks", "minres"), POSITIVE_INT),
        **dict.fromkeys(("outscale", "free_nats"), NON_NEGATIVE),
        **dict.fromkeys(("dt_min", "dt_max", "minstd", "maxstd"), POSITIVE),
        "unimix": UNIT,
        "bins": Range(2),
    }

    _target_: str = f"{_PKG}.module.SSM"
    family: str = "ssm"
    phases: Any = field(default_factory=lambda: base_default("ssm", "phases"))

    # widths (mmaze)
    deter_dim: int = 2048
    units: int = 1024
    ssm_state: int = 512
    ssm_layers: int = 5
    stoch_dim: int = 32
    classes: int = 32
    depth: int = 48
    mlp_units: int = 400
    mlp_layers: int = 4
    head_units: int = 1024
    head_layers: int = 4
    ac_inputs: list[str] = field(default_factory=lambda: ["deter", "stoch", "hidden"])

    # losses (mmaze: dyn 0.8, rep 0.2)
    loss_scales: dict[str, float] = field(
        default_factory=lambda: {
            "rec": 1.0,
            "reward": 1.0,
            "cont": 1.0,
            "dyn": 0.8,
            "rep": 0.2,
            "actor": 1.0,
            "critic": 1.0,
            "slowreg": 1.0,
        }
    )

    # optimisers (model_opt, model_opt_groups.group1, actor_opt, critic_opt)
    model_lr: float = 3e-4
    ssm_lr: float = 3e-4
    model_eps: float = 1e-8
    model_clip: float = 200.0
    model_wd: float = 1e-2
    actor_lr: float = 1e-4
    actor_eps: float = 1e-5
    actor_clip: float = 200.0
    critic_lr: float = 1e-4
    critic_eps: float = 1e-5
    critic_clip: float = 100.0

    # actor-critic
    imag_horizon: int = 15
    horizon: int = 333
    return_lambda: float = 0.95
    actent: float = 1e-3
    slow_fraction: float = 0.02
    slow_every: int = 1
    retnorm_decay: float = 0.99
    retnorm_max: float = 1.0
    retnorm_perclo: float = 5.0
    retnorm_perchi: float = 95.0

    # data (batch_size, batch_length, run.train_ratio)
    batch_size: int = 4
    batch_length: int = 1024
    train_ratio: float = 64.0

    # components
    encoder: Any = _component("networks.MultiEncoder", minres=4, symlog=True)
    dynamics: Any = _component(
        "dynamics.S3M",
        blocks=8,
        dt_min=0.001,
        dt_max=0.1,
        discretization="bilinear",
        unimix=0.01,
        free_nats=1.0,
        action_clip=1.0,
    )
    decoder: Any = _component("networks.MultiDecoder", minres=4)
    reward_head: Any = _component("networks.TwoHotHead", bins=255, outscale=0.0)
    continue_head: Any = _component("networks.BinaryHead", outscale=1.0)
    policy: Any = _component(
        "networks.PolicyHead", minstd=0.1, maxstd=1.0, unimix=0.01, outscale=1.0
    )
    value: Any = _component("networks.TwoHotHead", bins=255, outscale=0.0)

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
        bad = [k for k in self.ac_inputs if k not in ("deter", "stoch", "hidden")]
        if bad or not self.ac_inputs:
            raise ConfigError(
                f"ac_inputs must be a non-empty subset of ['deter', 'stoch', 'hidden'], got "
                f"{self.ac_inputs}"
            )
        if self.retnorm_perclo >= self.retnorm_perchi:
            raise ConfigError(
                "retnorm percentiles need retnorm_perclo < retnorm_perchi, got "
                f"{self.retnorm_perclo}, {self.retnorm_perchi}"
            )
        dyn = self.dynamics or {}
        blocks = dyn.get("blocks", 1)
        if self.ssm_state % blocks:
            raise ConfigError(
                f"ssm_state ({self.ssm_state}) must be divisible by dynamics.blocks ({blocks})"
            )
        lo, hi = dyn.get("dt_min", 0.001), dyn.get("dt_max", 0.1)
        if not lo < hi:
            raise ConfigError(f"dynamics.dt_min ({lo}) must be < dynamics.dt_max ({hi})")
        # Bilinear discretisation stays stable for any dt > 0, but the initial timescales of
        # the reference live in [1e-3, 1e-1]: a step past 1 spans the whole memory in one
        # step and one below 1e-6 cannot move the state in float32.
        if lo < 1e-6 or hi > 1.0:
            raise ConfigError(
                f"dynamics.dt_min/dt_max must lie in [1e-6, 1.0] (reference 0.001, 0.1), got "
                f"{lo}, {hi}"
            )
        if dyn.get("discretization", "bilinear") not in ("bilinear", "zoh"):
            raise ConfigError(
                "dynamics.discretization must be 'bilinear' or 'zoh', got "
                f"{dyn.get('discretization')!r}"
            )
        policy = self.policy or {}
        if policy.get("minstd", 0) > policy.get("maxstd", float("inf")):
            raise ConfigError(
                f"policy.minstd ({policy['minstd']}) must be <= policy.maxstd ({policy['maxstd']})"
            )
