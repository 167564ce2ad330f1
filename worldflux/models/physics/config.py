"""Typed config of the physics family (no torch imports).

Numbers follow greydanus/hamiltonian-nn @ bcc3622 (HNN: 2 tanh hidden layers of 200, Adam lr 1e-3,
weight decay 1e-4; PixelHNN: autoencoder 2 x 28 x 28 -> 200 -> 2 with relu, loss weights 1, 1,
0.1, weight decay 1e-5) and MilesCranmer/lagrangian_nns @ 2fc26cb (LNN: 4 -> 600 x 3 -> 1
softplus, L1 loss).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from worldflux.core.config import WorldModelConfig, base_default
from worldflux.core.validation import NON_NEGATIVE, POSITIVE, POSITIVE_INT, Range
from worldflux.errors import ConfigError

KINDS = ("hnn", "pixel_hnn", "lnn", "controlled")
INTEGRATORS = ("euler", "semi_implicit_euler", "leapfrog", "rk4")
FIELD_TYPES = ("solenoidal", "conservative", "both")
TARGETS = ("forward", "central", "exact")
NONLINEARITIES = ("tanh", "relu", "softplus", "sigmoid", "elu", "selu")
_CONTROLLED = "worldflux.models.physics.module.ControlledPhysics"


@dataclass
class PhysicsConfig(WorldModelConfig):
    """Hyperparameters of :class:`~worldflux.models.physics.module.Physics`.

    Attributes:
        kind: ``hnn`` (Hamiltonian NN on states ``(q, p)``), ``pixel_hnn`` (autoencoder + HNN on
            two stacked frames), ``lnn`` (Lagrangian NN on ``(q, qd)``) or ``controlled``
            (Symplectic ODE-Net: Hamiltonian + input matrix ``g(q)``; class ``ControlledPhysics``).
        baseline: replace the structured field by the reference's baseline MLP of the same width
            (it outputs ``dx/dt`` directly), for comparisons.
        hidden_dim, num_hidden, nonlinearity: the field network's width, depth and activation.
        field_type: HNN field: ``solenoidal`` (the Hamiltonian flow), ``conservative`` or ``both``.
        latent_dim, ae_hidden_dim, ae_nonlinearity: PixelHNN autoencoder.
        recon_coef, cc_coef, hnn_coef: PixelHNN loss weights (reconstruction, canonical
            coordinates, HNN).
        angle_wrap: LNN: the Lagrangian (and the LNN's baseline MLP, as the reference's
            ``baseline_eom``) sees angles wrapped to ``[-pi, pi)`` (as the reference).
        init: ``orthogonal`` (hamiltonian-nn's init, every kind) or ``lnn`` (the LNN's Lagrangian
            network initialised as lagrangian_nns ``lnn.custom_init``; the baseline MLP keeps
            ``orthogonal``). Without it the LNN does not learn (docs/learning.md, physics).
        dissipation: controlled: learn a damping matrix ``D(q)``.
        angle_embed: ``hnn`` / ``controlled``: the networks see ``(cos q, sin q, p)`` instead of
            ``(q, p)`` (Symplectic ODE-Net's embedded angles), so the learned energy, ``g`` and
            ``D`` are 2 pi periodic in ``q`` (pendulums whose angle winds past +-pi).
        dt: time between two observations (must equal the environment's ``dt``).
        integrator: how rollouts and the loss advance states (``euler``, ``semi_implicit_euler``,
            ``leapfrog``, ``rk4``).
        loss_integrator: integrator of the training loss; ``euler`` over one step makes the loss
            the reference's derivative regression on finite differences.
        rollout_steps: states predicted from each start in the loss (multi-step training).
        derivative_target: what the field is regressed on. ``exact`` (the references: the
            environment's exact ``dx/dt`` of each replayed state, ``batch["state_dot"]``, which
            the embedded physics systems record with ``record_derivative``), ``forward`` (the
            loss integrates ``rollout_steps`` steps with ``loss_integrator``; one ``euler`` step
            regresses the field on the forward difference ``(x[t+1] - x[t]) / dt``, biased by
            ``dt/2`` times the field's time derivative) or ``central`` (ours: the field at
            ``x[t]`` regressed on ``(x[t+1] - x[t-1]) / (2 dt)``, second order). ``exact`` and
            ``central`` take one step and no forces: ``hnn`` and ``lnn`` only.
        loss: ``l2`` (HNN) or ``l1`` (LNN) on the time derivatives.
        loss_cap: truncate each element's derivative error at this (``null``: no cap, as the
            references); larger errors give no gradient. Ours, for the LNN, whose near-singular
            learned mass matrix at a rare state otherwise throws training into a stall.
        definite_mass_coef, definite_mass_margin: ours, not in the LNN paper or reference (off,
            0, by default): with ``derivative_target: exact`` the ``lnn`` loss adds
            ``definite_mass_coef * mean(relu(definite_mass_margin - lambda_min(d2L/dqd2)))`` over
            the batch's states, a hinge that keeps the learned mass matrix positive definite (the
            physical sign). The plain LNN lands on an indefinite ``d2L/dqd2`` at some seeds,
            fits its training data with it, and drifts or runs away in long rollouts
            (docs/learning.md, physics).
        lr, weight_decay: Adam.
        grad_clip_norm: clip the gradient's global norm to this (``null``: no clipping, as the
            references). The LNN preset clips: a near-singular learned ``d2L/dqd2`` at one state
            of a batch gives a gradient thousands of times the usual one, and Adam's second moment
            then stalls training for thousands of updates (docs/learning.md, physics).
        batch_size, batch_length, train_ratio: replay sampling.
        horizon, num_samples, num_elites, iterations, temperature, min_std, max_std: MPPI.
        target_angle, angle_cost, velocity_cost, action_cost, terminal_weight: the swing-up
            task cost the planner uses (reward ``-(wrap(q - target)^2 + c_v p^2 + c_u u^2)``,
            the last state weighted ``terminal_weight``).
    """

    FIELD_RANGES: ClassVar[dict[str, Range]] = {
        "action_dim": POSITIVE_INT,
        "hidden_dim": POSITIVE_INT,
        "num_hidden": POSITIVE_INT,
        "latent_dim": Range(2),
        "ae_hidden_dim": POSITIVE_INT,
        "recon_coef": NON_NEGATIVE,
        "cc_coef": NON_NEGATIVE,
        "hnn_coef": NON_NEGATIVE,
        "dt": POSITIVE,
        "rollout_steps": POSITIVE_INT,
        "lr": POSITIVE,
        "weight_decay": NON_NEGATIVE,
        "loss_cap": POSITIVE,
        "definite_mass_coef": NON_NEGATIVE,
        "definite_mass_margin": POSITIVE,
        "batch_size": POSITIVE_INT,
        "batch_length": Range(2),
        "train_ratio": POSITIVE,
        "horizon": POSITIVE_INT,
        "num_samples": Range(2),
        "num_elites": POSITIVE_INT,
        "iterations": POSITIVE_INT,
        "temperature": POSITIVE,
        "min_std": POSITIVE,
        "max_std": POSITIVE,
        "target_angle": Range(-10.0, 10.0),
        "angle_cost": NON_NEGATIVE,
        "velocity_cost": NON_NEGATIVE,
        "action_cost": NON_NEGATIVE,
        "terminal_weight": NON_NEGATIVE,
    }
    SUPPORTED_MODALITIES: ClassVar[tuple[str, ...]] = ("vector", "image")
    REFERENCE_SETTINGS: ClassVar[dict[str, dict[str, Any]]] = {
        "spring_2d": {"obs_shape": [2], "action_dim": 1},
        "pendulum_pixels": {"obs_shape": [2, 28, 28], "action_dim": 1},
        "double_pendulum": {"obs_shape": [4], "action_dim": 1},
    }

    _target_: str = "worldflux.models.physics.module.Physics"
    family: str = "physics"
    obs_shape: list[int] = field(default_factory=lambda: [2])
    action_dim: int = 1
    action_kind: str = "continuous"
    phases: Any = field(default_factory=lambda: base_default("physics", "phases"))
    kind: str = "hnn"
    baseline: bool = False
    hidden_dim: int = 200
    num_hidden: int = 2
    nonlinearity: str = "tanh"
    field_type: str = "solenoidal"
    latent_dim: int = 2
    ae_hidden_dim: int = 200
    ae_nonlinearity: str = "relu"
    recon_coef: float = 1.0
    cc_coef: float = 1.0
    hnn_coef: float = 0.1
    angle_wrap: bool = False
    init: str = "orthogonal"
    dissipation: bool = False
    angle_embed: bool = False
    dt: float = 0.1
    integrator: str = "rk4"
    loss_integrator: str = "euler"
    rollout_steps: int = 1
    derivative_target: str = "forward"
    loss: str = "l2"
    loss_cap: float | None = None
    definite_mass_coef: float = 0.0
    definite_mass_margin: float = 1.0
    lr: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip_norm: float | None = None
    batch_size: int = 32
    batch_length: int = 8
    train_ratio: float = 64.0
    horizon: int = 20
    num_samples: int = 256
    num_elites: int = 32
    iterations: int = 4
    temperature: float = 0.5
    min_std: float = 0.05
    max_std: float = 1.0
    target_angle: float = math.pi
    angle_cost: float = 1.0
    velocity_cost: float = 0.1
    action_cost: float = 0.001
    terminal_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, value, choices in (
            ("kind", self.kind, KINDS),
            ("integrator", self.integrator, INTEGRATORS),
            ("loss_integrator", self.loss_integrator, INTEGRATORS),
            ("field_type", self.field_type, FIELD_TYPES),
            ("nonlinearity", self.nonlinearity, NONLINEARITIES),
            ("ae_nonlinearity", self.ae_nonlinearity, NONLINEARITIES),
            ("loss", self.loss, ("l1", "l2")),
            ("init", self.init, ("orthogonal", "lnn")),
            ("derivative_target", self.derivative_target, TARGETS),
        ):
            if value not in choices:
                raise ConfigError(f"config field {name!r} must be one of {choices}, got {value!r}")
        if self.action_kind != "continuous":
            raise ConfigError(
                "physics models take continuous actions (generalised forces); got "
                f"action_kind={self.action_kind!r}"
            )
        if (self.kind == "controlled") != (self._target_ == _CONTROLLED):
            raise ConfigError(
                f"kind 'controlled' goes with _target_ {_CONTROLLED!r} and the other kinds with "
                f"worldflux.models.physics.module.Physics; got kind={self.kind!r}, "
                f"_target_={self._target_!r}"
            )
        self._check_spaces()
        if self.angle_embed and self.kind not in ("hnn", "controlled"):
            raise ConfigError(
                "angle_embed applies to kind 'hnn' or 'controlled' (use angle_wrap for 'lnn'), "
                f"got kind={self.kind!r}"
            )
        if self.derivative_target != "forward" and (
            self.kind not in ("hnn", "lnn") or self.rollout_steps != 1
        ):
            raise ConfigError(
                f"derivative_target {self.derivative_target!r} needs kind 'hnn' or 'lnn' (no "
                f"forces) and rollout_steps 1, got kind={self.kind!r}, "
                f"rollout_steps={self.rollout_steps}"
            )
        if self.definite_mass_coef > 0 and (
            self.kind != "lnn" or self.baseline or self.derivative_target != "exact"
        ):
            raise ConfigError(
                "definite_mass_coef > 0 needs kind 'lnn' (not the baseline) and derivative_target "
                f"'exact', got kind={self.kind!r}, baseline={self.baseline}, "
                f"derivative_target={self.derivative_target!r}"
            )
        if self.init == "lnn" and self.kind != "lnn":
            raise ConfigError(f"init 'lnn' applies to kind 'lnn' only, got kind={self.kind!r}")
        if self.num_elites > self.num_samples or self.min_std > self.max_std:
            raise ConfigError(
                "need num_elites <= num_samples and min_std <= max_std, got "
                f"num_elites={self.num_elites}, num_samples={self.num_samples}, "
                f"min_std={self.min_std}, max_std={self.max_std}"
            )

    def _check_spaces(self) -> None:
        if self.observation_modalities is not None:
            raise ConfigError(
                "physics models take a single observation, not observation_modalities"
            )
        shape = list(self.obs_shape)
        if self.kind == "pixel_hnn":
            if len(shape) != 3:
                raise ConfigError(
                    f"kind 'pixel_hnn' takes image observations (frames, H, W), got obs_shape={shape}"
                )
        elif len(shape) != 1 or shape[0] % 2:
            raise ConfigError(
                f"kind {self.kind!r} takes a state vector (q, p) of even size 2 Q, got "
                f"obs_shape={shape}"
            )
        if self.kind == "pixel_hnn" and self.latent_dim % 2:
            raise ConfigError(f"latent_dim must be even (q, p), got {self.latent_dim}")
