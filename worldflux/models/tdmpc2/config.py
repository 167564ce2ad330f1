"""Typed config of the TD-MPC2 family (no torch imports).

Field names follow ``tdmpc2/config.yaml`` of nicklashansen/tdmpc2 (commit ``e9f5932``) where one
exists; the Q ensemble size is ``num_q_networks`` (``num_q`` in the official config, available here
as a property alias). Component slots (``encoder``, ``dynamics``, ``reward``, ``termination``,
``policy``, ``q_ensemble``) are ``_target_`` nodes whose widths are passed by the module at build
time, so changing ``mlp_dim`` or ``latent_dim`` after :func:`worldflux.get_config` takes effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from worldflux.core.config import WorldModelConfig, base_default
from worldflux.core.validation import (
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    UNIT,
    UNIT_OPEN_HIGH,
    UNIT_OPEN_LOW,
    Range,
)
from worldflux.errors import ConfigError

_NETWORKS = "worldflux.models.tdmpc2.networks"
ENTROPY_FORMS = ("scaled", "legacy")


def _component(name: str, **knobs: Any) -> Any:
    return field(default_factory=lambda: {"_target_": f"{_NETWORKS}.{name}", **knobs})


def discount_from_episode_length(
    episode_length: int, denom: float = 5.0, low: float = 0.95, high: float = 0.995
) -> float:
    """The official discount heuristic: ``(L/denom - 1) / (L/denom)`` clipped to ``[low, high]``."""
    frac = episode_length / denom
    return min(max((frac - 1) / frac, low), high)


@dataclass
class TDMPC2Config(WorldModelConfig):
    """Hyperparameters of TD-MPC2 (Hansen, Su & Wang, ICLR 2024).

    Attributes:
        num_enc_layers: encoder depth (``max(num_enc_layers - 1, 1)`` hidden layers of ``enc_dim``).
        enc_dim: width of the observation encoder's hidden layers.
        mlp_dim: width of the dynamics, reward, termination, policy and Q networks.
        latent_dim: size of the SimNorm latent ``z``.
        num_q_networks: size of the Q ensemble (``num_q`` officially; alias property ``num_q``).
        simnorm_dim: SimNorm group size.
        num_bins, vmin, vmax: discrete regression support (symlog space) of reward and Q.
        log_std_min, log_std_max: range the policy's log standard deviation is squashed into.
        num_tasks: number of tasks; ``> 1`` turns on the multitask model (task embeddings).
        task_dim: task-embedding size used when ``num_tasks > 1`` (96 for mt80 and the 1M/317M
            models; the official mt30 checkpoints at 5M/19M/48M use 64).
        task_action_dims: per-task number of real action dimensions (the rest are padding and
            masked out); ``None`` means every task uses all ``action_dim`` dimensions.
        task_episode_lengths: per-task episode lengths for the per-task discounts (multitask).
        episode_length: episode length the discount is derived from (single task).
        discount: fixed discount; overrides the episode-length heuristic when set.
        discount_denom, discount_min, discount_max: the discount heuristic's constants.
        episodic: add the termination head and use predicted terminations (episodic tasks).
        lr, enc_lr_scale, pi_adam_eps, grad_clip_norm, tau, rho: optimisation constants.
        consistency_coef, reward_coef, value_coef, termination_coef, entropy_coef: loss weights.
        entropy_form: ``"scaled"`` (2024 code: Gaussian log-likelihood scaled by the number of
            action dimensions) or ``"legacy"`` (2023 release: log-probability with the tanh
            correction, the Gaussian part scaled by the number of action dimensions).
        policy_q_dropout: keep the Q ensemble's dropout active when it scores the policy
            (2024 code: yes; 2023 release: no).
        batch_size: sequences per update (256 officially).
        batch_length: steps per sampled sequence, ``horizon + 1`` officially; longer sequences
            are cut into overlapping windows of ``horizon + 1`` steps.
        mpc: plan in :meth:`act` (MPPI, or ``planner``); ``False`` acts with the policy prior.
        horizon, iterations, num_samples, num_elites, num_pi_trajs, min_std, max_std,
            temperature: MPPI settings (``iterations`` grows by 2 when ``action_dim >= 20``).
        planner: a ``planner`` group node (``conf/planner/``) to plan with instead; ``None``
            plans with MPPI from the settings above.
        encoder, dynamics, reward, termination, policy, q_ensemble: component nodes.
    """

    #: The settings the official parameter counts were measured in (``meta.official_params`` keys).
    REFERENCE_SETTINGS: ClassVar[dict[str, dict[str, Any]]] = {
        "walker_walk": {"obs_shape": [24], "action_dim": 6},
        "dog_run": {"obs_shape": [223], "action_dim": 38},
        "mt80": {"obs_shape": [39], "action_dim": 6, "num_tasks": 80, "task_dim": 96},
    }

    SUPPORTED_MODALITIES: ClassVar[tuple[str, ...]] = ("image", "vector")
    FIELD_RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(
            (
                "num_enc_layers",
                "enc_dim",
                "mlp_dim",
                "latent_dim",
                "simnorm_dim",
                "num_tasks",
                "task_action_dims",
                "task_episode_lengths",
                "episode_length",
                "batch_size",
                "batch_length",
                "horizon",
                "iterations",
                "num_samples",
                "num_elites",
            ),
            POSITIVE_INT,
        ),
        **dict.fromkeys(
            ("lr", "pi_adam_eps", "grad_clip_norm", "discount_denom", "min_std", "max_std"),
            POSITIVE,
        ),
        **dict.fromkeys(
            (
                "task_dim",
                "enc_lr_scale",
                "consistency_coef",
                "reward_coef",
                "value_coef",
                "termination_coef",
                "entropy_coef",
                "num_pi_trajs",
            ),
            NON_NEGATIVE,
        ),
        "num_q_networks": Range(2),  # TD targets use two sampled Q-functions
        "num_bins": Range(2),
        "discount": UNIT_OPEN_LOW,
        "discount_min": UNIT_OPEN_LOW,
        "discount_max": UNIT_OPEN_LOW,
        "tau": UNIT,
        "rho": UNIT_OPEN_LOW,
        "temperature": POSITIVE,
    }
    #: Ranges of the component knobs, checked in every component node that has the key.
    KNOB_RANGES: ClassVar[dict[str, Range]] = {
        "num_channels": POSITIVE_INT,
        "shift_pad": NON_NEGATIVE,
        "dropout": UNIT_OPEN_HIGH,
    }

    _target_: str = "worldflux.models.tdmpc2.module.TDMPC2"
    family: str = "tdmpc2"
    phases: Any = field(default_factory=lambda: base_default("tdmpc2", "phases"))
    obs_shape: list[int] = field(default_factory=lambda: [24])
    action_dim: int = 6
    action_kind: str = "continuous"

    # architecture (tdmpc2/config.yaml + MODEL_SIZE[5])
    num_enc_layers: int = 2
    enc_dim: int = 256
    mlp_dim: int = 512
    latent_dim: int = 512
    num_q_networks: int = 5
    simnorm_dim: int = 8
    num_bins: int = 101
    vmin: float = -10.0
    vmax: float = 10.0
    log_std_min: float = -10.0
    log_std_max: float = 2.0

    # multitask
    num_tasks: int = 1
    task_dim: int = 96
    task_action_dims: Optional[list[int]] = None
    task_episode_lengths: Optional[list[int]] = None

    # discount and termination
    episode_length: int = 1000
    discount: Optional[float] = None
    discount_denom: float = 5.0
    discount_min: float = 0.95
    discount_max: float = 0.995
    episodic: bool = False

    # training
    lr: float = 3e-4
    enc_lr_scale: float = 0.3
    pi_adam_eps: float = 1e-5
    grad_clip_norm: float = 20.0
    tau: float = 0.01
    rho: float = 0.5
    consistency_coef: float = 20.0
    reward_coef: float = 0.1
    value_coef: float = 0.1
    termination_coef: float = 1.0
    entropy_coef: float = 1e-4
    entropy_form: str = "scaled"
    policy_q_dropout: bool = True
    batch_size: int = 256
    batch_length: int = 4

    # planning (MPPI)
    mpc: bool = True
    horizon: int = 3
    iterations: int = 6
    num_samples: int = 512
    num_elites: int = 64
    num_pi_trajs: int = 24
    min_std: float = 0.05
    max_std: float = 2.0
    temperature: float = 0.5
    planner: Any = None

    # components
    encoder: Any = _component("Encoder", num_channels=32, shift_pad=3, latent_norm="simnorm")
    dynamics: Any = _component("LatentDynamics", latent_norm="simnorm")
    reward: Any = _component("RewardHead")
    termination: Any = _component("TerminationHead")
    policy: Any = _component("GaussianPolicyPrior")
    q_ensemble: Any = _component("QEnsemble", dropout=0.01)

    @property
    def num_q(self) -> int:
        """Alias of :attr:`num_q_networks` (the official config's name)."""
        return self.num_q_networks

    @num_q.setter
    def num_q(self, value: int) -> None:
        self.num_q_networks = int(value)

    @property
    def multitask(self) -> bool:
        """Whether the model conditions on a task embedding."""
        return self.num_tasks > 1

    @property
    def effective_task_dim(self) -> int:
        """Width of the task embedding actually concatenated to inputs (0 for a single task)."""
        return self.task_dim if self.multitask else 0

    @property
    def planning_iterations(self) -> int:
        """MPPI iterations, with the official +2 for large action spaces (``action_dim >= 20``)."""
        return self.iterations + 2 * int(self.action_dim >= 20)

    def task_discounts(self) -> list[float]:
        """Discount per task (one entry for a single-task model)."""
        if self.discount is not None:
            return [float(self.discount)] * self.num_tasks
        lengths = self.task_episode_lengths or [self.episode_length] * self.num_tasks
        return [
            discount_from_episode_length(
                n, self.discount_denom, self.discount_min, self.discount_max
            )
            for n in lengths
        ]

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.action_kind != "continuous":
            raise ConfigError(
                "TD-MPC2 controls continuous actions in [-1, 1]; action_kind must be "
                f"'continuous', got {self.action_kind!r}"
            )
        mods = self.modalities()
        if len(mods) != 1:
            raise ConfigError(
                f"TD-MPC2 takes one observation modality (a vector or a 64x64 image), got "
                f"{sorted(mods)}"
            )
        spec = next(iter(mods.values()))
        if spec["kind"] == "image" and list(spec["shape"][1:]) != [64, 64]:
            raise ConfigError(
                f"TD-MPC2's pixel encoder expects (C, 64, 64) images, got {tuple(spec['shape'])}"
            )
        if spec["kind"] == "image" and self.multitask:
            raise ConfigError("TD-MPC2 multitask models take vector observations, not images")
        self._check_sizes()
        self._check_tasks()
        if self.batch_length < self.horizon + 1:
            raise ConfigError(
                f"batch_length must be at least horizon + 1 = {self.horizon + 1}, "
                f"got {self.batch_length}"
            )

    def _check_sizes(self) -> None:
        if self.latent_dim % self.simnorm_dim:
            raise ConfigError(
                f"latent_dim ({self.latent_dim}) must be a multiple of simnorm_dim "
                f"({self.simnorm_dim})"
            )
        if self.vmax <= self.vmin:
            raise ConfigError(f"need vmax > vmin, got [{self.vmin}, {self.vmax}]")
        if self.log_std_max <= self.log_std_min:
            raise ConfigError(
                f"need log_std_max > log_std_min, got [{self.log_std_min}, {self.log_std_max}]"
            )
        if self.discount_min > self.discount_max:
            raise ConfigError(
                f"need discount_min <= discount_max, got [{self.discount_min}, {self.discount_max}]"
            )
        if not 0 <= self.num_pi_trajs < self.num_samples:
            raise ConfigError(
                f"num_pi_trajs must be in [0, num_samples={self.num_samples}), "
                f"got {self.num_pi_trajs}"
            )
        if self.num_elites > self.num_samples:
            raise ConfigError(
                f"num_elites ({self.num_elites}) must be <= num_samples ({self.num_samples})"
            )
        if not 0 < self.min_std <= self.max_std:
            raise ConfigError(f"need 0 < min_std <= max_std, got {self.min_std}, {self.max_std}")
        if self.entropy_form not in ENTROPY_FORMS:
            raise ConfigError(
                f"entropy_form must be one of {ENTROPY_FORMS}, got {self.entropy_form!r}"
            )

    def _check_tasks(self) -> None:
        if self.multitask and self.task_dim < 1:
            raise ConfigError(f"a multitask model (num_tasks={self.num_tasks}) needs task_dim >= 1")
        for name in ("task_action_dims", "task_episode_lengths"):
            values = getattr(self, name)
            if values is None:
                continue
            if len(values) != self.num_tasks:
                raise ConfigError(
                    f"{name} needs one entry per task ({self.num_tasks}), got {len(values)}"
                )
        dims = self.task_action_dims or []
        if any(d > self.action_dim for d in dims):
            raise ConfigError(
                f"task_action_dims entries must be <= action_dim ({self.action_dim}), got {dims}"
            )
