"""renderer3d: world models whose state is a 3-D scene rendered from any camera pose.

Papers and references:

- ``renderer3d:base``: "3D Neural Scene Representations for Visuomotor Control" (Y. Li, S. Li,
  V. Sitzmann, P. Agrawal, A. Torralba, CoRL 2021). No code was released, so the paper is the
  reference: a multi-view encoder (per-view CNN with the camera pose, averaged over views) gives
  the scene state, a conditional NeRF renders it by volume rendering (stratified + hierarchical
  sampling), a time-contrastive triplet term makes the state viewpoint-invariant, and a latent
  dynamics model is trained for future prediction in latent space. Sizes in
  ``conf/model/renderer3d/base.yaml``.
- ``renderer3d:gqn``: the Generative Query Network (Eslami et al., Science 2018), counted and
  compared against iShohei220/torch-gqn @ c0156c7 (pool representation, shared ConvLSTM core,
  L = 12, 64x64 images, 7-d viewpoints: 49,469,343 parameters), plus an action-conditioned
  transition of the representation that makes it a world model.

The state is a ``(B, Z)`` scene latent: ``encode`` pools it from views and poses, ``transition``
and ``rollout`` advance it under actions, ``render`` draws it from any pose and ``decode`` from
the canonical pose. Training has two phases (``base.yaml``): ``model`` (encoder + renderer:
rendering loss or ELBO, plus the time-contrastive term) and ``dynamics`` (the transition:
open-loop latent prediction against the detached encodings of later steps).

Axis legend: ``B`` batch, ``T`` time, ``V`` views, ``Q`` query views, ``Z`` scene state, ``A``
action, ``H`` horizon, ``C, H, W`` image channels and size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from worldflux.core.model import LossOutput, WorldModel
from worldflux.core.protocols import Rollout
from worldflux.errors import ShapeError
from worldflux.models.renderer3d import rays as R
from worldflux.models.renderer3d.config import Renderer3DConfig

#: Observation names of multi-view observations (as :class:`worldflux.envs.scene3d.Scene3D`).
VIEWS, POSES = "views", "poses"


class Renderer3D(WorldModel):
    """A scene latent inferred from posed views, advanced by actions, rendered from any pose."""

    config: Renderer3DConfig
    config_class = Renderer3DConfig
    component_slots = ("encoder", "renderer", "dynamics")
    capabilities = frozenset({"encode", "transition", "rollout", "decode", "loss"})

    def __init__(self, config: Mapping[str, Any] | Renderer3DConfig) -> None:
        super().__init__(config)
        c = self.config
        self.image_size = self._image_size()
        self.encoder = self.build_component(
            "encoder",
            image_size=self.image_size,
            latent_dim=c.latent_dim,
            channels=c.enc_channels,
            hidden=c.enc_hidden,
        )
        self.renderer = self.build_component(
            "renderer",
            image_size=self.image_size,
            latent_dim=c.latent_dim,
            width=c.nerf_width,
            depth=c.nerf_depth,
            skip=c.nerf_skip,
            pos_freqs=c.pos_freqs,
            dir_freqs=c.dir_freqs,
            coarse_samples=c.coarse_samples,
            fine_samples=c.fine_samples,
            near=c.near,
            far=c.far,
            scene_scale=c.scene_scale,
            fov=c.fov,
            ray_batch=c.ray_batch,
            render_chunk=c.render_chunk,
            channels=c.core_channels,
            z_channels=c.z_channels,
            steps=c.gqn_steps,
            shared_core=c.shared_core,
            sigma_start=c.sigma_start,
            sigma_end=c.sigma_end,
            sigma_anneal_steps=c.sigma_anneal_steps,
        )
        self.dynamics = (
            self.build_component(
                "dynamics",
                latent_dim=c.latent_dim,
                action_dim=c.action_dim,
                hidden=c.transition_hidden,
                layers=c.transition_layers,
            )
            if c.action_conditioned
            else None
        )
        if hasattr(self.renderer, "ray_batch"):  # refuse an untileable ray batch at build time
            R.tile_size(*self.image_size, c.ray_batch)

    # ------------------------------------------------------------------ observations
    def _image_size(self) -> tuple[int, int]:
        mods = self.config.modalities()
        if self.config.multimodal:
            missing = [k for k in (VIEWS, POSES) if k not in mods]
            if missing:
                raise ShapeError(
                    f"renderer3d takes a single image or the modalities {VIEWS!r} (3V, H, W) and "
                    f"{POSES!r} (7V,); missing {missing} in {sorted(mods)}"
                )
            c, h, w = mods[VIEWS]["shape"]
            if c % 3 or c == 0 or mods[POSES]["shape"] != [R.POSE_DIM * (c // 3)]:
                raise ShapeError(
                    f"{VIEWS!r} must stack V RGB views (3V channels) and {POSES!r} hold 7V numbers; "
                    f"got {VIEWS} {mods[VIEWS]['shape']} and {POSES} {mods[POSES]['shape']}"
                )
            return h, w
        c, h, w = mods["obs"]["shape"]
        if c != 3:
            raise ShapeError(f"renderer3d takes RGB images (3, H, W), got obs_shape {[c, h, w]}")
        return h, w

    def views_and_poses(self, obs: Any) -> tuple[Tensor, Tensor]:
        """Images ``(..., V, 3, H, W)`` in ``[0, 1]`` and poses ``(..., V, 7)`` of observations.

        A single image is one view from :func:`~worldflux.models.renderer3d.rays.canonical_pose`.

        Raises:
            ShapeError: zero views, views that are not 3V channels, poses of the wrong shape or
                with non-finite values.
        """
        dev = self.device
        if isinstance(obs, Mapping) and VIEWS in obs:
            if POSES not in obs:
                raise ShapeError(f"multi-view observations need {POSES!r} next to {VIEWS!r}")
            views = torch.as_tensor(obs[VIEWS], device=dev)
            poses = torch.as_tensor(obs[POSES], device=dev).float()
        else:
            views = torch.as_tensor(obs["obs"] if isinstance(obs, Mapping) else obs, device=dev)
            poses = R.canonical_pose(dev).expand(*views.shape[:-3], R.POSE_DIM)
        if views.dim() < 4:
            raise ShapeError(
                f"views must be (..., 3V, H, W) with a batch axis, got {tuple(views.shape)}"
            )
        c = views.shape[-3]
        if c == 0 or c % 3:
            raise ShapeError(
                f"views must stack V >= 1 RGB images along channels (3V), got {c} channels"
                + (" (zero views)" if c == 0 else "")
            )
        if tuple(views.shape[-2:]) != self.image_size:
            raise ShapeError(f"views must be {self.image_size}, got {tuple(views.shape[-2:])}")
        v = c // 3
        if poses.shape[:-1] != views.shape[:-3] or poses.shape[-1] != R.POSE_DIM * v:
            raise ShapeError(
                f"poses must be (..., {R.POSE_DIM * v}) for {v} views of shape "
                f"{tuple(views.shape)}, got {tuple(poses.shape)}"
            )
        poses = poses.unflatten(-1, (v, R.POSE_DIM))
        R.check_poses(poses, v)
        images = views.float() / 255.0 if views.dtype == torch.uint8 else views.float()
        return images.unflatten(-3, (v, 3)), poses

    # ------------------------------------------------------------------ capabilities
    def encode_views(self, images: Tensor, poses: Tensor) -> Tensor:
        """The scene state ``(..., Z)`` pooled from ``(..., V, 3, H, W)`` views and poses."""
        lead = images.shape[:-4]
        per_view = self.encoder(images.flatten(0, len(lead) - 1), poses.flatten(0, len(lead) - 1))
        return self.encoder.pool(per_view).unflatten(0, lead)

    def encode(self, obs: Any) -> Tensor:
        """The scene state ``(B, Z)`` or ``(B, T, Z)`` from all views of ``obs``."""
        return self.encode_views(*self.views_and_poses(obs))

    def transition(self, state: Tensor, action: Tensor) -> Tensor:
        """The scene state after ``action (..., A)``; unchanged when not action-conditioned."""
        if self.dynamics is None:
            return state
        return self.dynamics(state, torch.as_tensor(action, device=state.device).float())

    def rollout(self, state: Tensor, actions: Tensor) -> Rollout:
        """States ``(B, H, Z)`` after each of ``actions (B, H, A)``."""
        states = []
        for h in range(actions.shape[1]):
            state = self.transition(state, actions[:, h])
            states.append(state)
        return Rollout(states=torch.stack(states, 1), actions=actions)

    def render(self, state: Tensor, poses: Tensor) -> Tensor:
        """Images ``(B, Q, 3, H, W)`` in ``[0, 1]`` of states ``(B, Z)`` from poses ``(B, Q, 7)``."""
        R.check_poses(poses)
        if poses.dim() != 3 or poses.shape[0] != state.shape[0]:
            raise ShapeError(
                f"poses must be (B, Q, 7) with B = {state.shape[0]}, got {tuple(poses.shape)}"
            )
        return self.renderer.render(state, poses.float(), *self.image_size).clamp(0, 1)

    def decode(self, state: Any) -> dict[str, Tensor]:
        """``{"obs": (..., 3, H, W)}``: the state rendered from the canonical pose."""
        z = state.states if isinstance(state, Rollout) else state
        flat = z.reshape(-1, z.shape[-1])
        poses = R.canonical_pose(flat.device).expand(flat.shape[0], 1, R.POSE_DIM)
        img = self.render(flat, poses)[:, 0]
        return {"obs": img.unflatten(0, z.shape[:-1])}

    # ------------------------------------------------------------------ reference weights
    @classmethod
    def reference_overrides(cls, state: Mapping[str, Tensor]) -> dict[str, Any]:
        """Sizes stored in a torch-gqn state dict (:mod:`.weights`)."""
        from worldflux.models.renderer3d.weights import reference_overrides

        return reference_overrides(state)

    @classmethod
    def from_reference_state(cls, state: Mapping[str, Tensor], config: Any) -> dict[str, Tensor]:
        """Our state dict for a torch-gqn ``GQN(representation="pool")`` state dict."""
        from worldflux.models.renderer3d.weights import reference_to_ours

        return reference_to_ours(state)

    # ------------------------------------------------------------------ training
    def split_views(
        self, images: Tensor, poses: Tensor
    ) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """``(context, query)`` views and poses: the last ``query_views`` views are held out.

        With no more views than ``query_views`` every view is both context and target.
        """
        v, q = images.shape[-4], self.config.query_views
        if v <= q:
            return (images, poses), (images, poses)
        return (images[..., : v - q, :, :, :], poses[..., : v - q, :]), (
            images[..., v - q :, :, :, :],
            poses[..., v - q :, :],
        )

    def phase_loss(
        self, name: str, batch: Mapping[str, Any], outputs: Mapping[str, LossOutput]
    ) -> LossOutput:
        """The ``model`` (rendering + time-contrastive) or ``dynamics`` (latent prediction) loss."""
        c = self.config
        images, poses = self.views_and_poses(batch["obs"])  # (B, T, V, ...)
        if name == "model":
            (ci, cp), (qi, qp) = self.split_views(images, poses)
            b, t = ci.shape[:2]
            per_view = self.encoder(ci.flatten(0, 1), cp.flatten(0, 1))  # (BT, V', Z)
            z = self.encoder.pool(per_view)
            render, parts = self.renderer.loss(
                z, qi.flatten(0, 1), qp.flatten(0, 1), self.phase_steps.get("model", 0)
            )
            total = c.render_coef * render
            if c.tcn_coef > 0 and per_view.shape[1] >= 2 and t >= 2:
                parts["tcn"] = time_contrastive(per_view.unflatten(0, (b, t)), c.tcn_margin)
                total = total + c.tcn_coef * parts["tcn"]
            return LossOutput(total, parts)
        if name == "dynamics":
            start = int(batch.get("burn_in", 0))
            if images.shape[1] - start < 2:
                raise ShapeError(
                    f"the dynamics phase needs batch_length - burn_in >= 2, got {images.shape[1]}"
                )
            with torch.no_grad():
                z = self.encode_views(images[:, start:], poses[:, start:])
            action = torch.as_tensor(batch["action"], device=z.device).float()[:, start + 1 :]
            pred = self.rollout(z[:, 0], action).states
            loss = F.mse_loss(pred, z[:, 1:])
            return LossOutput(loss, {"dynamics": loss})
        raise ShapeError(f"renderer3d has phases 'model' and 'dynamics', not {name!r}")

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """Both phases' losses on one batch (``total`` is their sum)."""
        parts = [self.phase_loss(p.name, batch, {}) for p in self.schedule.phases]
        components = {k: v for out in parts for k, v in out.components.items()}
        return LossOutput(sum((o.total for o in parts[1:]), parts[0].total), components)

    def _apply_warmup(self, phase: Any, opt: Any) -> None:
        """GQN's learning-rate annealing ``lr -> lr_end`` over ``lr_anneal_steps`` model updates."""
        c = self.config
        if phase.name != "model" or c.lr_anneal_steps <= 0:
            super()._apply_warmup(phase, opt)
            return
        frac = 1 - self.phase_steps[phase.name] / c.lr_anneal_steps
        lr = max(c.lr_end + (c.lr - c.lr_end) * frac, c.lr_end)
        for group in getattr(opt, "optimizer", opt).param_groups:
            group["lr"] = lr


def time_contrastive(per_view: Tensor, margin: float) -> Tensor:
    """Multi-view time-contrastive triplet loss on per-view latents ``(B, T, V, Z)``.

    Anchor: view 0 at step t; positive: view 1 at the same step; negative: view 1 at another step
    of the same sequence. Latents are L2-normalised so the margin is scale-free.
    """
    z = F.normalize(per_view, dim=-1)
    anchor, positive = z[:, :, 0], z[:, :, 1]
    negative = positive.roll(1, dims=1)
    pos = (anchor - positive).pow(2).sum(-1)
    neg = (anchor - negative).pow(2).sum(-1)
    return F.relu(pos - neg + margin).mean()
