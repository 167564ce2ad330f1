"""Typed config of the JEPA family (no torch imports).

Numbers come from PLDM (Sobal et al. 2025, vladisai/PLDM @ cbaf674,
``pldm/configs/wall/icml/noise0.yaml``): the two-rooms/wall setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from worldflux.core.config import WorldModelConfig, base_default
from worldflux.core.validation import NON_NEGATIVE, POSITIVE, POSITIVE_INT, Range
from worldflux.errors import ConfigError

_NETWORKS = "worldflux.models.jepa.networks"

#: PLDM plans with MPPI toward the goal's embedding with 2000 samples (docs/jepa.md maps its
#: settings onto the shared planner's).
_PLANNER: dict[str, Any] = {
    "_target_": "worldflux.planning.mppi.MPPIPlanner",
    "horizon": 16,
    "iterations": 4,
    "num_samples": 2000,
    "num_elites": 64,
    "num_pi_trajs": 0,
    "min_std": 0.05,
    "max_std": 1.0,
    "temperature": 10.0,
    "objective": "goal",
    "goal_metric": "l2",
    "action_low": -1.0,
    "action_high": 1.0,
}


def _component(name: str, **knobs: Any) -> Any:
    return field(default_factory=lambda: {"_target_": f"{_NETWORKS}.{name}", **knobs})


@dataclass
class JEPAConfig(WorldModelConfig):
    """Hyperparameters of :class:`~worldflux.models.jepa.module.JEPA`.

    Attributes:
        latent_dim: size of the embedding the encoder produces and the predictor steps (512).
        tie_norm: the predictor's output goes through the encoder's final LayerNorm (PLDM's
            ``tie_backbone_ln``), so predictions and encodings live on the same normalised scale.
        sim_coeff: weight of the prediction term (mean squared error of predicted vs encoded).
        std_coeff, cov_coeff: VICReg variance and covariance weights on the first step's
            encodings, across the batch.
        std_coeff_t: weight of the temporal variance term (each sequence's encodings across time).
        sim_coeff_t: weight of the temporal similarity term (consecutive encodings close).
        std_margin, std_margin_t: the hinge targets of the two variance terms.
        idm_coeff: weight of the inverse-dynamics term; ``0`` builds no inverse-dynamics head.
        lr: Adam learning rate (PLDM: ``base_lr * batch_size / 256`` = 7e-4 * 64 / 256).
        weight_decay: Adam's (coupled, L2) weight decay.
        lr_schedule_steps: length of PLDM's schedule in updates: linear warm-up over the first
            10%, then cosine decay to ``lr_final_scale * lr``; ``0`` keeps ``lr`` constant.
        lr_final_scale: the learning rate at the end of the cosine, relative to ``lr``.
        batch_size, batch_length: sequences per update and states per sequence.
        planner: a ``planner`` group node (``conf/planner/``) with ``objective: goal``: how
            ``act(..., goal=...)`` plans toward a goal observation.
        encoder, predictor, idm: component nodes.
        action_encoder, proprio_encoder, decoder: DINO-WM's component nodes (``null`` in PLDM).
        num_hist: DINO-WM's history length in frames; its sequences are ``num_hist + 1`` long.
        action_emb_dim, proprio_emb_dim: DINO-WM's action and proprioception embedding sizes,
            concatenated to every patch token.
        encoder_image_size: side the images are resized to for DINOv2 (196: 14 x 14 patches).
        dino_weights: DINOv2 weights file; ``None`` looks in the torch hub cache, and without
            weights the frozen encoder is random (logged once).
    """

    _target_: str = "worldflux.models.jepa.module.JEPA"
    family: str = "jepa"
    obs_shape: list[int] = field(default_factory=lambda: [2, 65, 65])
    action_dim: int = 2
    action_kind: str = "continuous"
    phases: Any = field(default_factory=lambda: base_default("jepa", "phases"))
    encoder: Any = _component("ImpalaEncoder", channels=[16, 32, 32], num_blocks=2, final_norm=True)
    predictor: Any = _component("GRUPredictor", final_norm=False)
    idm: Any = _component("InverseDynamics", hidden=[512])
    planner: Any = field(default_factory=lambda: dict(_PLANNER))
    action_encoder: Any = None
    proprio_encoder: Any = None
    decoder: Any = None
    latent_dim: int = 512
    tie_norm: bool = True
    sim_coeff: float = 1.0
    std_coeff: float = 3.9843
    cov_coeff: float = 6.9238
    std_coeff_t: float = 0.24535
    sim_coeff_t: float = 0.74242
    std_margin: float = 1.0
    std_margin_t: float = 1.0
    idm_coeff: float = 1.072
    lr: float = 1.75e-4
    weight_decay: float = 1e-6
    lr_schedule_steps: int = 0
    lr_final_scale: float = 0.001
    batch_size: int = 64
    batch_length: int = 16
    num_hist: int = 3
    action_emb_dim: int = 10
    proprio_emb_dim: int = 10
    encoder_image_size: int = 196
    dino_weights: Optional[str] = None

    #: The reference's trainable count leaves out the inverse-dynamics head, which its optimiser
    #: never receives (``meta.official_params.wall``); we build and train it by default.
    REFERENCE_SETTINGS: ClassVar[dict[str, dict[str, Any]]] = {
        "wall": {"obs_shape": [2, 65, 65], "action_dim": 2, "idm_coeff": 0.0},
        # DINO-WM on PushT: 224 px images, 4-d proprioception, 2-d actions x frameskip 5
        "pusht": {
            "observation_modalities": {
                "visual": {"kind": "image", "shape": [3, 224, 224]},
                "proprio": {"kind": "vector", "shape": [4]},
            },
            "action_dim": 10,
        },
    }
    #: PLDM takes one image; DINO-WM an image plus a proprioception vector.
    SUPPORTED_MODALITIES: ClassVar[tuple[str, ...]] = ("image", "vector")
    FIELD_RANGES: ClassVar[dict[str, Range]] = {
        "latent_dim": POSITIVE_INT,
        "num_hist": POSITIVE_INT,
        "action_emb_dim": POSITIVE_INT,
        "proprio_emb_dim": POSITIVE_INT,
        "encoder_image_size": Range(14),
        "batch_size": Range(2),  # the variance and covariance terms need two samples
        "batch_length": Range(2),  # one transition at least
        "lr_schedule_steps": NON_NEGATIVE,
        "lr": POSITIVE,
        "lr_final_scale": Range(0, 1),
        "weight_decay": NON_NEGATIVE,
        **dict.fromkeys(
            (
                "sim_coeff",
                "std_coeff",
                "cov_coeff",
                "std_coeff_t",
                "sim_coeff_t",
                "std_margin",
                "std_margin_t",
                "idm_coeff",
            ),
            NON_NEGATIVE,
        ),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.action_kind != "continuous":
            raise ConfigError(
                f"action_kind must be 'continuous' for jepa (PLDM plans continuous actions), "
                f"got {self.action_kind!r}"
            )
        if self.decoder is not None and self.batch_length != self.num_hist + 1:
            raise ConfigError(
                f"batch_length must be num_hist + 1 = {self.num_hist + 1} for DINO-WM (history "
                f"frames plus the predicted one), got {self.batch_length}"
            )
        if self.encoder_image_size % 14:
            raise ConfigError(
                f"encoder_image_size must be a multiple of 14 (DINOv2 patches), got "
                f"{self.encoder_image_size}"
            )
        if self.planner is not None:
            objective = dict(self.planner).get("objective", "return")
            if objective != "goal":
                raise ConfigError(
                    f"planner.objective must be 'goal' for jepa (it plans toward goal "
                    f"observations and predicts no reward), got {objective!r}"
                )
