"""Typed config of the renderer3d family (no torch imports).

Two scene models share this config: the neural scene field of Li et al. (CoRL 2021; components
``encoder/field_cnn`` + ``renderer/nerf``) and the Generative Query Network of Eslami et al.
(Science 2018; ``encoder/gqn_pool`` + ``renderer/gqn``). The widths below are fields; the
components choose the architecture. See :mod:`worldflux.models.renderer3d.module`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from worldflux.core.config import WorldModelConfig, base_default
from worldflux.core.validation import NON_NEGATIVE, POSITIVE, POSITIVE_INT, Range
from worldflux.errors import ConfigError


def _component(name: str, **kwargs: Any) -> Any:
    return field(
        default_factory=lambda: {"_target_": f"worldflux.models.renderer3d.{name}", **kwargs}
    )


@dataclass
class Renderer3DConfig(WorldModelConfig):
    """Hyperparameters of :class:`~worldflux.models.renderer3d.module.Renderer3D`.

    Observations are either a dict ``{"views": (3 V, H, W), "poses": (7 V,)}`` (V camera views
    and their poses, as :class:`~worldflux.envs.scene3d.Scene3D` produces) or a single image,
    which is one view from :func:`~worldflux.models.renderer3d.rays.canonical_pose`.

    Attributes:
        latent_dim: size of the scene state (the pooled representation ``r`` for GQN).
        query_views: views per step held out of the encoder's context and used as rendering
            targets (when a step has more views than this; with one view it is its own target).
        fov: the cameras' field of view in degrees (must match the environment).
        action_conditioned: whether the scene state is advanced by a learned transition; without
            it the model is the published static-scene model and has no dynamics phase.
        enc_channels: base width of the field encoder's CNN (x1, x2, x4, x8 over 4 layers).
        enc_hidden: width of the field encoder's MLP on image features and pose.
        nerf_width, nerf_depth, nerf_skip: the conditional NeRF MLP (the input is concatenated
            again after layer ``nerf_skip``; ``0`` for none).
        pos_freqs, dir_freqs: positional-encoding frequencies of points and view directions.
        coarse_samples, fine_samples: stratified and hierarchical samples per ray.
        near, far: ray depth bounds in world units.
        scene_scale: points are divided by it before encoding (the room's half extent).
        ray_batch: rays per query view per update (stratified, one per square tile).
        render_chunk: rays rendered at once when rendering whole images.
        core_channels, z_channels, gqn_steps, shared_core: GQN's ConvLSTM width, latent
            channels, generation steps and weight sharing across steps (its representation size
            is ``latent_dim``).
        sigma_start, sigma_end, sigma_anneal_steps: GQN's pixel standard deviation annealing.
        lr, lr_end, lr_anneal_steps: the model phase's Adam rate, linearly annealed to ``lr_end``
            over ``lr_anneal_steps`` updates (``0``: constant).
        dynamics_lr: the transition's Adam rate.
        transition_hidden, transition_layers: the residual MLP of the action-conditioned
            transition.
        render_coef, tcn_coef, tcn_margin: loss scales of rendering and the time-contrastive
            triplet term (and its margin).
        batch_size, batch_length, train_ratio: replay batch shape and replayed steps per env step.
        encoder, renderer, dynamics: component nodes (the dynamics is the transition).
    """

    FIELD_RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(
            (
                "latent_dim",
                "query_views",
                "enc_channels",
                "enc_hidden",
                "nerf_width",
                "nerf_depth",
                "coarse_samples",
                "ray_batch",
                "render_chunk",
                "core_channels",
                "z_channels",
                "gqn_steps",
                "transition_hidden",
                "batch_size",
                "batch_length",
            ),
            POSITIVE_INT,
        ),
        **dict.fromkeys(
            (
                "nerf_skip",
                "pos_freqs",
                "dir_freqs",
                "fine_samples",
                "transition_layers",
                "sigma_anneal_steps",
                "lr_anneal_steps",
            ),
            NON_NEGATIVE,
        ),
        **dict.fromkeys(
            (
                "near",
                "far",
                "scene_scale",
                "sigma_start",
                "sigma_end",
                "lr",
                "lr_end",
                "dynamics_lr",
                "train_ratio",
            ),
            POSITIVE,
        ),
        "fov": Range(1.0, 179.0),
        "render_coef": NON_NEGATIVE,
        "tcn_coef": NON_NEGATIVE,
        "tcn_margin": NON_NEGATIVE,
        "action_dim": POSITIVE_INT,
    }
    SUPPORTED_MODALITIES: ClassVar[tuple[str, ...]] = ("image", "vector")
    #: GQN counted by building iShohei220/torch-gqn @ c0156c7 GQN(representation="pool",
    #: shared_core=True) at its 64x64 images and 7-d viewpoints; it has no transition.
    REFERENCE_SETTINGS: ClassVar[dict[str, dict[str, Any]]] = {
        "torch_gqn_pool_shared": {"obs_shape": [3, 64, 64], "action_conditioned": False},
    }

    _target_: str = "worldflux.models.renderer3d.module.Renderer3D"
    family: str = "renderer3d"
    obs_shape: list[int] = field(default_factory=lambda: [3, 64, 64])
    action_dim: int = 2
    action_kind: str = "continuous"
    phases: Any = field(default_factory=lambda: base_default("renderer3d", "phases"))

    latent_dim: int = 256
    query_views: int = 1
    fov: float = 60.0
    action_conditioned: bool = True
    # neural scene field (Li et al. 2021)
    enc_channels: int = 32
    enc_hidden: int = 512
    nerf_width: int = 256
    nerf_depth: int = 8
    nerf_skip: int = 4
    pos_freqs: int = 10
    dir_freqs: int = 4
    coarse_samples: int = 64
    fine_samples: int = 128
    near: float = 0.1
    far: float = 8.0
    scene_scale: float = 3.0
    ray_batch: int = 1024
    render_chunk: int = 8192
    # GQN (Eslami et al. 2018)
    core_channels: int = 128
    z_channels: int = 3
    gqn_steps: int = 12
    shared_core: bool = True
    sigma_start: float = 2.0
    sigma_end: float = 0.7
    sigma_anneal_steps: int = 200000
    # training
    lr: float = 5.0e-4
    lr_end: float = 5.0e-4
    lr_anneal_steps: int = 0
    dynamics_lr: float = 1.0e-3
    transition_hidden: int = 512
    transition_layers: int = 2
    render_coef: float = 1.0
    tcn_coef: float = 0.1
    tcn_margin: float = 0.5
    batch_size: int = 4
    batch_length: int = 4
    train_ratio: float = 8.0

    encoder: Any = _component("field.SceneEncoder", pool="mean")
    renderer: Any = _component("field.NeRFRenderer")
    dynamics: Any = _component("field.LatentTransition")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.far <= self.near:
            raise ConfigError(f"far must be > near, got near={self.near}, far={self.far}")
        if self.nerf_skip >= self.nerf_depth:
            raise ConfigError(
                f"nerf_skip must be < nerf_depth ({self.nerf_depth}), got {self.nerf_skip}"
            )
        if self.lr_end > self.lr:
            raise ConfigError(f"lr_end must be <= lr ({self.lr}), got {self.lr_end}")
        if not self.action_conditioned and isinstance(self.phases, dict):
            # a static scene has no transition, hence nothing for the dynamics phase to train
            self.phases = {k: v for k, v in self.phases.items() if k != "dynamics"}
