"""V-JEPA 2 and V-JEPA 2-AC (Assran et al., "V-JEPA 2: Self-Supervised Video Models Enable
Understanding, Prediction and Planning", 2025; reference facebookresearch/vjepa2 @ c2963a4).

Two stages, two classes sharing the encoder code:

- :class:`VJEPA2Pretrain` (``vjepa2:pretrain_*``): masked latent prediction on video clips. The
  encoder sees the context tokens left by multi-block masks, a narrow predictor fills in the
  masked tokens with mask tokens, and the loss is the L1 distance to the layer-normed features of
  an EMA target encoder (``app/vjepa/train.py``).
- :class:`VJEPA2` (``vjepa2:base``, ``vjepa2:large``, ``vjepa2:ci``): V-JEPA 2-AC. The encoder is
  frozen; every frame is encoded alone (duplicated to fill one tubelet, as
  ``app/vjepa_droid/train.py``) and layer-normed; the frame-causal action-conditioned predictor is
  trained with 1-step teacher forcing plus an ``auto_steps`` autoregressive rollout, both L1.
  It plans with CEM toward the encoding of a goal observation (:mod:`.planning`).

Replay batches are ``obs (B, T, C, H, W)`` frames and ``action (B, T, A)`` where ``action[:, t]``
led to ``obs[:, t]``; the AC stage therefore pairs frame ``t`` with ``action[:, t + 1]``. The
embedded environments have no proprioceptive state, so the state tokens get zero states (the
released model takes the 7-d end-effector pose there).

Axis legend: ``B`` batch, ``T`` time, ``C, H, W`` image, ``P`` tokens per frame, ``D`` encoder
width, ``A`` action size, ``N`` flat batch of planning samples.
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
from worldflux.models.vjepa2.config import VJEPA2Config
from worldflux.models.vjepa2.masks import multiblock_masks
from worldflux.nn.ema import EMA
from worldflux.planning import PlanningError, build_planner

# The reference's input normalisation (ImageNet statistics) for uint8 frames.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def l1_loss(pred: Tensor, target: Tensor, exp: float) -> Tensor:
    """``mean(|pred - target| ** exp) / exp`` (the reference's loss; L1 at ``exp = 1``)."""
    return (pred - target).abs().pow(exp).mean() / exp


class _VJEPA2Base(WorldModel):
    """Observation handling and the encoder, shared by both stages."""

    config: VJEPA2Config
    config_class = VJEPA2Config
    component_slots = ("encoder", "predictor")
    fsdp_wrap_units = ("RoPEBlock",)  # encoder and predictor transformer blocks
    loads_weights_itself = True  # official files hold several state dicts (checkpoint.py)

    def _build_encoder(self) -> None:
        c = self.config
        self.modality, spec = next(iter(c.modalities().items()))
        self.obs_kind, self.obs_shape = spec["kind"], tuple(spec["shape"])
        self.encoder = self.build_component(
            "encoder",
            in_channels=self.obs_shape[-3],
            dim=c.enc_dim,
            depth=c.enc_depth,
            heads=c.enc_heads,
            mlp_dim=c.enc_mlp_dim,
            patch=c.patch_size,
            tubelet=c.tubelet_size,
            init_std=c.init_std,
        )
        self.grid = (self.obs_shape[-2] // c.patch_size, self.obs_shape[-1] // c.patch_size)
        self.tokens_per_frame = self.grid[0] * self.grid[1]
        self.register_buffer("pixel_mean", torch.tensor(_MEAN)[:, None, None], persistent=False)
        self.register_buffer("pixel_std", torch.tensor(_STD)[:, None, None], persistent=False)

    def _load_weights(self) -> None:
        from worldflux.models.vjepa2.checkpoint import load_official

        if self.config.encoder_weights:
            load_official(self, self.config.encoder_weights, encoder_only=True)
        if self.config.weights:
            load_official(self, self.config.weights)

    def _pixels(self, obs: Any, lead: int) -> Tensor:
        """Float frames ``(*lead axes, *obs_shape)``; uint8 is scaled and ImageNet-normalised."""
        if isinstance(obs, Mapping):
            if self.modality not in obs:
                raise ShapeError(f"observations need key {self.modality!r}, got {sorted(obs)}")
            obs = obs[self.modality]
        x = torch.as_tensor(obs, device=self.pixel_mean.device)
        if tuple(x.shape[lead:]) != self.obs_shape or x.dim() != lead + len(self.obs_shape):
            raise ShapeError(
                f"observations must be ({'B, T, ' if lead == 2 else 'B, '}"
                f"{', '.join(map(str, self.obs_shape))}), got {tuple(x.shape)}"
            )
        dtype = self.encoder.patch_embed.proj.weight.dtype  # bf16 inference takes bf16 inputs
        if x.dtype == torch.uint8:
            return ((x.float() / 255.0 - self.pixel_mean) / self.pixel_std).to(dtype)
        return x.to(dtype)

    def encode_frames(self, frames: Tensor, encoder: torch.nn.Module | None = None) -> Tensor:
        """Features ``(..., P, D)`` of single frames ``(..., C, H, W)``, each repeated to one
        tubelet (the AC stage's per-frame encoding), layer-normed if ``normalize_reps``."""
        lead = frames.shape[:-3]
        x = frames.reshape(-1, *frames.shape[-3:]).unsqueeze(2)
        x = x.expand(-1, -1, self.config.tubelet_size, -1, -1)
        h = (encoder or self.encoder)(x)
        if self.config.normalize_reps:
            h = F.layer_norm(h, h.shape[-1:])
        return h.reshape(*lead, *h.shape[-2:])

    def encode(self, obs: Tensor | Mapping[str, Tensor]) -> Tensor:
        """Features ``(B, P, D)`` of frames ``(B, C, H, W)`` (or ``(B, T, P, D)`` of
        ``(B, T, C, H, W)``); video observations give ``(B, N, D)`` of their clips."""
        raw = obs[self.modality] if isinstance(obs, Mapping) else obs
        lead = torch.as_tensor(raw).dim() - len(self.obs_shape)
        if lead not in (1, 2):
            raise ShapeError(
                f"observations must be (B, {', '.join(map(str, self.obs_shape))}) or with a time "
                f"axis, got {tuple(torch.as_tensor(raw).shape)}"
            )
        x = self._pixels(obs, lead)
        if self.obs_kind == "video":
            clips = x.reshape(-1, *self.obs_shape).transpose(1, 2)  # (B', C, T, H, W)
            h = self.encoder(clips)
            return h.reshape(*x.shape[:lead], *h.shape[-2:])
        return self.encode_frames(x)


class VJEPA2(_VJEPA2Base):
    """V-JEPA 2-AC: frozen video encoder, action-conditioned predictor, CEM goal planning."""

    capabilities = frozenset({"encode", "loss", "rollout", "goal"})

    def __init__(self, config: Mapping[str, Any] | VJEPA2Config) -> None:
        super().__init__(config)
        c = self.config
        self._build_encoder()
        if self.obs_kind != "image":
            raise ShapeError(
                f"the action-conditioned stage takes image frames (C, H, W), got a "
                f"{self.obs_kind} observation {self.obs_shape}; video clips are for pretraining"
            )
        self.encoder.requires_grad_(False)  # frozen, as in the reference's AC training
        self.predictor = self.build_component(
            "predictor",
            embed_dim=c.enc_dim,
            dim=c.pred_dim,
            depth=c.pred_depth,
            heads=c.pred_heads,
            mlp_dim=c.pred_mlp_dim,
            action_dim=c.action_dim,
            grid=self.grid,
            init_std=c.init_std,
        )
        self.planner = build_planner(c.planner, c.action_dim)
        self._load_weights()

    def train(self, mode: bool = True) -> VJEPA2:
        """The frozen encoder stays in eval mode."""
        super().train(mode)
        self.encoder.train(False)
        return self

    # ------------------------------------------------------------------ prediction
    def _states(self, like: Tensor, steps: int) -> Tensor:
        return like.new_zeros(like.shape[0], steps, self.config.action_dim)

    def predict(self, frames: Tensor, actions: Tensor) -> Tensor:
        """Next-frame features ``(B, T, P, D)`` from features ``(B, T, P, D)`` and the actions
        ``(B, T, A)`` taken after each frame (layer-normed if ``normalize_reps``)."""
        b, t = frames.shape[:2]
        actions = actions.to(frames.dtype)
        out = self.predictor(frames.flatten(1, 2), actions, self._states(frames, t))
        if self.config.normalize_reps:
            out = F.layer_norm(out, out.shape[-1:])
        return out.view(b, t, self.tokens_per_frame, -1)

    def imagine(self, start: Tensor, actions: Tensor) -> Tensor:
        """Autoregressive rollout ``(B, H, P, D)`` from features ``start (B, P, D)`` and actions
        ``(B, H, A)``; each step sees the start and every frame predicted so far."""
        frames = start[:, None]
        for h in range(actions.shape[1]):
            nxt = self.predict(frames, actions[:, : h + 1])[:, -1:]
            frames = torch.cat([frames, nxt], 1)
        return frames[:, 1:]

    def _check_actions(self, actions: Tensor, lead: tuple[int, ...]) -> Tensor:
        a = torch.as_tensor(actions, device=self.pixel_mean.device).float()
        if tuple(a.shape) != (*lead, self.config.action_dim):
            raise ShapeError(
                f"actions must be {(*lead, self.config.action_dim)} (action_dim="
                f"{self.config.action_dim}), got {tuple(a.shape)}"
            )
        return a

    # ------------------------------------------------------------------ training
    def phase_loss(
        self, name: str, batch: Mapping[str, Any], outputs: Mapping[str, LossOutput]
    ) -> LossOutput:
        """Teacher-forcing + rollout L1 losses of the predictor against frozen features."""
        c, start = self.config, int(batch.get("burn_in", 0))
        frames = self._pixels(batch["obs"], 2)[:, start:]
        b, t = frames.shape[:2]
        if t < c.auto_steps + 1:
            raise ShapeError(
                f"the AC loss needs clips of at least auto_steps + 1 = {c.auto_steps + 1} frames, "
                f"got {t}"
            )
        actions = self._check_actions(batch["action"], (b, t + start))[:, start + 1 :]
        with torch.no_grad():
            h = self.encode_frames(frames)  # (B, T, P, D)
        z_tf = self.predict(h[:, :-1], actions)
        roll = self.imagine(h[:, 0], actions[:, : c.auto_steps])
        jloss = l1_loss(z_tf, h[:, 1:], c.loss_exp)
        sloss = l1_loss(roll, h[:, 1 : c.auto_steps + 1], c.loss_exp)
        copy = l1_loss(h[:, :-1], h[:, 1:], c.loss_exp).detach()
        return LossOutput(
            jloss + sloss,
            {"teacher_forcing": jloss, "rollout": sloss},
            metrics={"copy_baseline": copy, "embed_std": h.std(0).mean().detach()},
        )

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """The AC loss on one batch."""
        return self.phase_loss("train", batch, {})

    # ------------------------------------------------------------------ contract
    def rollout(self, state: Tensor, actions: Tensor) -> Rollout:
        """Imagined features ``(B, H, P, D)`` from encoded frames ``state (B, P, D)``."""
        state = torch.as_tensor(state)
        actions = self._check_actions(actions, (state.shape[0], torch.as_tensor(actions).shape[1]))
        return Rollout(states=self.imagine(state, actions), actions=actions)

    def score_goal(self, state: Tensor, goal: Any) -> Tensor:
        """Minus the mean L1 distance ``(B,)`` of features ``state (B, P, D)`` to the goal's."""
        g = self.encode(goal)
        return -(torch.as_tensor(state) - g).abs().flatten(1).mean(1)

    # ------------------------------------------------------------------ planning
    def plan_encode(self, obs: Any, task: Tensor | None = None) -> Tensor:
        """Flat features ``(B, P * D)`` of frames ``(B, C, H, W)``."""
        return self.encode(obs).flatten(1)

    def plan_next(self, z: Tensor, action: Tensor, task: Tensor | None = None) -> Tensor:
        """One predicted step ``(N, P * D)`` from the frame ``z`` alone (no history)."""
        frames = z.view(z.shape[0], 1, self.tokens_per_frame, -1)
        return self.predict(frames, action[:, None]).flatten(1)

    def plan_rollout(self, z: Tensor, actions: Tensor) -> Tensor:
        """Last predicted frame ``(N, P * D)`` of ``actions (H, N, A)`` from flat ``z (N, P * D)``."""
        start = z.view(z.shape[0], self.tokens_per_frame, -1)
        return self.imagine(start, actions.transpose(0, 1))[:, -1].flatten(1)

    @torch.no_grad()
    def act(  # type: ignore[override]  # adds the keyword-only acting options
        self,
        obs: Any,
        state: Any = None,
        *,
        first: Tensor | None = None,
        eval_mode: bool = False,
        task: Tensor | None = None,
        goal: Any = None,
    ) -> tuple[Tensor, Any]:
        """CEM action ``(B, A)`` toward ``goal`` (goal observations like ``obs``); the plan
        starts from scratch each call, as the reference's planner (the state is ``None``)."""
        if goal is None:
            raise PlanningError(
                "V-JEPA 2-AC acts by planning toward a goal: pass goal=<goal observation>"
            )
        z, g = self.plan_encode(obs), self.plan_encode(goal)
        if g.shape != z.shape:
            raise ShapeError(
                f"goal observations must match obs, got {tuple(g.shape)} vs {tuple(z.shape)}"
            )
        result = self.planner.plan(self, z, goal=g, eval_mode=eval_mode)
        return result.action, None


class VJEPA2Pretrain(_VJEPA2Base):
    """The V-JEPA 2 pretraining stage: masked latent prediction against an EMA target encoder."""

    capabilities = frozenset({"encode", "loss"})

    def __init__(self, config: Mapping[str, Any] | VJEPA2Config) -> None:
        super().__init__(config)
        c = self.config
        self._build_encoder()
        self.predictor = self.build_component(
            "predictor",
            embed_dim=c.enc_dim,
            dim=c.pred_dim,
            depth=c.pred_depth,
            heads=c.pred_heads,
            mlp_dim=c.pred_mlp_dim,
            num_mask_tokens=c.num_mask_tokens,
            init_std=c.init_std,
        )
        self.target_encoder = EMA(self.encoder, rate=1.0 - c.ema_momentum)
        self._load_weights()

    def clips(self, obs: Any) -> Tensor:
        """``(B', C, T, H, W)`` clips: replayed frame sequences (image observations, cut to a
        multiple of the tubelet) or the observed clips themselves (video observations)."""
        x = self._pixels(obs, 2)
        if self.obs_kind == "video":
            return x.flatten(0, 1).transpose(1, 2)
        k = self.config.tubelet_size
        t = x.shape[1] - x.shape[1] % k
        if t < k:
            raise ShapeError(
                f"a clip needs at least tubelet_size={k} frames, got sequences of {x.shape[1]}"
            )
        return x[:, :t].transpose(1, 2)

    def phase_loss(
        self, name: str, batch: Mapping[str, Any], outputs: Mapping[str, LossOutput]
    ) -> LossOutput:
        """Mean over mask generators of the L1 loss on the masked tokens."""
        c = self.config
        video = self.clips(batch["obs"])
        grid = self.encoder.grid(tuple(video.shape))
        with torch.no_grad():
            h = self.target_encoder(video)
            h = F.layer_norm(h, h.shape[-1:])
        # masks drawn from the global RNG's stream, so torch.manual_seed reproduces them
        gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        losses = []
        for n_blocks, scale in zip(c.mask_num_blocks, c.mask_scales):
            keep, target = multiblock_masks(
                video.shape[0], grid, n_blocks, scale, tuple(c.mask_aspect_ratio), gen
            )
            keep, target = keep.to(video.device), target.to(video.device)
            z = self.encoder(video, keep)
            # one clip length, so mask token 0 for every mask (the reference indexes by length)
            pred = self.predictor(z, keep, target, grid, 0)
            goal = torch.gather(h, 1, target[..., None].expand(-1, -1, h.shape[-1]))
            losses.append(l1_loss(pred, goal, c.loss_exp))
        loss = torch.stack(losses).mean()
        return LossOutput(loss, {"jepa": loss}, metrics={"embed_std": h.std(0).mean().detach()})

    def after_phase(self, name: str) -> None:
        """Move the target encoder toward the encoder (momentum ``ema_momentum``)."""
        self.target_encoder.update()

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """The masked-prediction loss on one batch."""
        return self.phase_loss("train", batch, {})
