"""DINO-WM: a ViT predictor over frozen DINOv2 patch features, planning toward goal images.

``jepa:dino_wm`` is DINO-WM (Zhou et al., "DINO-WM: World Models on Pre-trained Visual Features
enable Zero-shot Planning", 2024; reference implementation gaoyuezhou/dino_wm @ 0a9492f,
``models/visual_world_model.py`` and ``conf/train.yaml``). Each frame is embedded by a frozen
DINOv2 ViT-S/14 (196 patches of 384 at 196 px); a 10-d proprioception embedding and a 10-d
action embedding are concatenated to every patch (``concat_dim: 1``), giving 404-d tokens. The
frame-causal ViT predictor maps ``num_hist`` frames to the next ``num_hist`` frames, trained by
MSE on the visual and proprioceptive part of the targets (``z_loss``); a decoder is trained
separately on detached latents to reconstruct the images (visualisation only).

Planning (``act(obs, state, goal=...)``) uses a shared planner with ``objective: goal``; the
planner's flat latent is the whole ``num_hist``-frame window, and the goal latent is the goal
frame's tokens in every slot of the window, so the score is the distance of the last
``num_hist`` predicted frames to the goal (DINO-WM scores the last frame only; docs/jepa.md).

Axis legend: ``B`` batch, ``T`` frames, ``P`` patches, ``D`` token width (``E + 2 K``), ``E``
DINO width, ``K`` proprio/action embedding size, ``A`` action size, ``N`` planner batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from worldflux.core.model import LossOutput, WorldModel
from worldflux.core.protocols import Rollout
from worldflux.errors import ConfigError, ShapeError
from worldflux.models.jepa.config import JEPAConfig
from worldflux.planning.protocol import PlanningError


class DinoWM(WorldModel):
    """DINO-WM: frozen DINOv2 features, frame-causal ViT predictor, decoder, goal planning."""

    config: JEPAConfig
    config_class = JEPAConfig
    capabilities = frozenset({"encode", "transition", "rollout", "decode", "loss", "goal"})
    component_slots = ("encoder", "predictor", "action_encoder", "proprio_encoder", "decoder")
    #: DINO-WM's checkpoints leave out the frozen encoder (dino_checkpoint.py reads them).
    loads_weights_itself = True

    def __init__(self, config: Mapping[str, Any] | JEPAConfig) -> None:
        super().__init__(config)
        c = self.config
        mods = c.modalities()
        images = [k for k, m in mods.items() if m["kind"] == "image"]
        vectors = [k for k, m in mods.items() if m["kind"] == "vector"]
        if len(images) != 1 or len(vectors) != 1 or len(mods) != 2:
            raise ConfigError(
                "DINO-WM takes observation_modalities with one image and one proprioception "
                f"vector, got { ({k: m['kind'] for k, m in mods.items()}) }"
            )
        self.visual_key, self.proprio_key = images[0], vectors[0]
        self.image_shape = tuple(mods[self.visual_key]["shape"])
        proprio_dim = int(mods[self.proprio_key]["shape"][0])
        self.encoder = self.build_component("encoder")
        emb = int(self.encoder.embed_dim)
        self.patches = (c.encoder_image_size // 14) ** 2
        self.dim = emb + c.proprio_emb_dim + c.action_emb_dim
        self.predictor = self.build_component(
            "predictor", dim=self.dim, patches=self.patches, frames=c.num_hist
        )
        self.action_encoder = self.build_component(
            "action_encoder", in_dim=c.action_dim, emb_dim=c.action_emb_dim
        )
        self.proprio_encoder = self.build_component(
            "proprio_encoder", in_dim=proprio_dim, emb_dim=c.proprio_emb_dim
        )
        self.decoder = (
            self.build_component("decoder", emb_dim=emb, out_channels=self.image_shape[0])
            if c.decoder
            else None
        )
        self.planner = None
        if c.planner:
            from worldflux.planning import build_planner

            self.planner = build_planner(c.planner, c.action_dim)
        if self._param_device().type != "meta":  # a meta build only counts parameters
            self.load_encoder_weights()
            if c.weights:
                from worldflux.models.jepa.dino_checkpoint import load_checkpoint

                load_checkpoint(self, c.weights)

    # ------------------------------------------------------------------ encoding
    def _param_device(self) -> torch.device:
        return self.action_encoder.patch_embed.weight.device

    def load_encoder_weights(self) -> bool:
        """Load DINOv2 weights (``config.dino_weights`` or the torch hub cache); ``False``: none."""
        from worldflux.nn.dinov2 import load_dinov2

        return load_dinov2(self.encoder, self.config.dino_weights)

    def _split(self, obs: Any, lead: int, name: str) -> tuple[Tensor, Tensor]:
        """``(visual (*lead, C, H, W) in [-1, 1], proprio (*lead, Dp))`` from an observation."""
        if not isinstance(obs, Mapping) or {self.visual_key, self.proprio_key} - set(obs):
            raise ShapeError(
                f"{name} must be a dict with {self.visual_key!r} and {self.proprio_key!r}, got "
                f"{type(obs).__name__}{sorted(obs) if isinstance(obs, Mapping) else ''}"
            )
        dev = self._param_device()
        visual = torch.as_tensor(obs[self.visual_key], device=dev)
        proprio = torch.as_tensor(obs[self.proprio_key], device=dev).float()
        if visual.dim() != lead + 3 or tuple(visual.shape[lead:]) != self.image_shape:
            raise ShapeError(
                f"{name}[{self.visual_key!r}] must have shape ({'B, T' if lead == 2 else 'B'}, "
                f"{', '.join(map(str, self.image_shape))}), got {tuple(visual.shape)}"
            )
        if proprio.shape[:lead] != visual.shape[:lead] or proprio.dim() != lead + 1:
            raise ShapeError(
                f"{name}[{self.proprio_key!r}] must have shape {tuple(visual.shape[:lead])} + "
                f"(Dp,), got {tuple(proprio.shape)}"
            )
        visual = visual.float() / 255.0 if visual.dtype == torch.uint8 else visual.float()
        return visual * 2.0 - 1.0, proprio  # DINO-WM normalises images with mean = std = 0.5

    def _visual_features(self, visual: Tensor) -> Tensor:
        """DINOv2 patch features ``(..., P, E)`` of images ``(..., C, H, W)`` in ``[-1, 1]``."""
        lead = visual.shape[:-3]
        x = visual.reshape(-1, *visual.shape[-3:])
        side = self.config.encoder_image_size
        if x.shape[-1] != side or x.shape[-2] != side:
            x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True)
        with torch.no_grad():
            feats = self.encoder(x)
        return feats.reshape(*lead, *feats.shape[-2:])

    def _tokens(self, visual: Tensor, proprio: Tensor, action: Tensor) -> Tensor:
        """Tokens ``(B, T, P, D)``: patch features, proprio and action embeddings per patch."""
        feats = self._visual_features(visual)
        p = feats.shape[-2]
        prop = self.proprio_encoder(proprio)[:, :, None].expand(-1, -1, p, -1)
        act = self.action_encoder(action)[:, :, None].expand(-1, -1, p, -1)
        return torch.cat([feats, prop, act], -1)

    def encode(self, obs: Any, name: str = "obs") -> Tensor:
        """Tokens ``(B, P, D)`` of one frame per batch entry (zero action embedding input)."""
        visual, proprio = self._split(obs, 1, name)
        zeros = proprio.new_zeros(len(proprio), 1, self.config.action_dim)
        return self._tokens(visual[:, None], proprio[:, None], zeros)[:, 0]

    # ------------------------------------------------------------------ dynamics
    def _with_action(self, window: Tensor, action: Tensor) -> Tensor:
        """``window (N, T, P, D)`` with the last frame's action slots set from ``action (N, A)``."""
        k = self.config.action_emb_dim
        emb = self.action_encoder(action[:, None])[:, 0]
        last = torch.cat([window[:, -1, :, :-k], emb[:, None].expand(-1, window.shape[2], -1)], -1)
        return torch.cat([window[:, :-1], last[:, None]], 1)

    def transition(self, state: Tensor, action: Tensor) -> Tensor:
        """The next window ``(N, T, P, D)``: predict a frame under ``action`` and slide."""
        t = self.config.num_hist
        if state.dim() != 4 or state.shape[1:] != (t, self.patches, self.dim):
            raise ShapeError(
                f"a DINO-WM state is a window (N, num_hist={t}, {self.patches}, {self.dim}), got "
                f"{tuple(state.shape)}"
            )
        window = self._with_action(state, action)
        nxt = self.predictor(window)[:, -1:]
        return torch.cat([window[:, 1:], nxt], 1)

    def rollout(self, state: Tensor, actions: Tensor) -> Rollout:
        """Predicted frames ``(B, H, P, D)`` from a window or one frame's tokens ``(B, P, D)``."""
        if state.dim() == 3:
            state = state[:, None].expand(-1, self.config.num_hist, -1, -1)
        frames = []
        for h in range(actions.shape[1]):
            state = self.transition(state, actions[:, h])
            frames.append(state[:, -1])
        return Rollout(states=torch.stack(frames, 1), actions=actions)

    def decode(self, state: Tensor) -> dict[str, Tensor]:
        """Images ``(B, C, 16 g, 16 g)`` in ``[-1, 1]`` from a frame's tokens ``(B, P, D)``."""
        if self.decoder is None:
            raise ConfigError("this DINO-WM preset has no decoder (config.decoder is null)")
        e = self.encoder.embed_dim
        return {"obs": self.decoder(state[..., :e].reshape(-1, *state.shape[-2:-1], e))}

    # ------------------------------------------------------------------ planning
    def plan_encode(self, obs: Any, task: Tensor | None) -> Tensor:
        """A flat goal window ``(B, T P D)``: the goal frame's tokens in every slot."""
        tokens = self.encode(obs, "goal")
        return tokens[:, None].expand(-1, self.config.num_hist, -1, -1).flatten(1)

    def plan_next(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        """One predictor step on flat windows ``(N, T P D)``."""
        window = z.view(len(z), self.config.num_hist, self.patches, self.dim)
        return self.transition(window, action).flatten(1)

    def score_goal(self, state: Tensor, goal: Any) -> Tensor:
        """Minus the mean squared error ``(B,)`` of a frame's visual+proprio tokens to the goal's."""
        k = self.config.action_emb_dim
        return -(state[..., :-k] - self.encode(goal, "goal")[..., :-k]).pow(2).flatten(1).mean(-1)

    def act(
        self,
        obs: Any,
        state: Any = None,
        *,
        first: Tensor | None = None,
        eval_mode: bool = False,
        task: Any = None,
        goal: Any = None,
    ) -> tuple[Tensor, Any]:
        """Plan toward ``goal`` from the last ``num_hist`` frames; return ``(action, state)``.

        The state keeps the frame window (``window (B, T, P, D)``) and the plan (warm start).

        Raises:
            PlanningError: no goal or no planner. ShapeError: bad observation, goal or window.
        """
        if self.planner is None:
            raise PlanningError("DINO-WM acts by planning toward a goal; config.planner is null")
        if goal is None:
            raise PlanningError("DINO-WM plans toward a goal observation: pass goal=<obs dict>")
        frame = self.encode(obs)
        b, t = len(frame), self.config.num_hist
        if state is None or (first is not None and bool(first.any())):
            window, prev = frame[:, None].expand(-1, t, -1, -1), None
        else:
            window, prev = state["window"], state.get("plan_mean")
            if window.shape != (b, t, self.patches, self.dim):
                raise ShapeError(
                    f"state['window'] must hold num_hist={t} frames (B, {t}, {self.patches}, "
                    f"{self.dim}), got {tuple(window.shape)}"
                )
            window = torch.cat([window[:, 1:], frame[:, None]], 1)
        goal_z = self.plan_encode(goal, None)
        if goal_z.shape[0] != b:
            raise ShapeError(f"goal must hold one goal per observation: {b} vs {goal_z.shape[0]}")
        result = self.planner.plan(
            self, window.flatten(1), prev_mean=prev, eval_mode=eval_mode, goal=goal_z
        )
        window = self._with_action(window, result.action)
        return result.action, {"window": window, "plan_mean": result.mean}

    # ------------------------------------------------------------------ training
    def phase_loss(
        self, name: str, batch: Mapping[str, Any], outputs: Mapping[str, LossOutput]
    ) -> LossOutput:
        """``model``: latent prediction MSE; ``decoder``: reconstruction of detached latents."""
        if name == "decoder":
            # as DINO-WM's total loss: the decoder learns from the detached encodings only (the
            # reference also decodes the predictions, for logging, outside its loss)
            tokens, visual = outputs["model"].outputs["tokens"], outputs["model"].outputs["visual"]
            e = self.encoder.embed_dim
            recon = self.decoder(tokens[..., :e].flatten(0, 1))
            loss = F.mse_loss(recon, visual.flatten(0, 1))
            return LossOutput(loss, {"decoder_recon": loss})
        return self._prediction_loss(batch)

    def _prediction_loss(self, batch: Mapping[str, Any]) -> LossOutput:
        c = self.config
        visual, proprio = self._split(batch["obs"], 2, "batch['obs']")
        b, t = visual.shape[:2]
        if t != c.num_hist + 1:
            raise ShapeError(
                f"DINO-WM trains on num_hist + 1 = {c.num_hist + 1} frames (history plus the "
                f"predicted frame), got T={t}"
            )
        action = torch.as_tensor(batch["action"], device=visual.device).float()
        if action.shape != (b, t, c.action_dim):
            raise ShapeError(
                f"action must have shape {(b, t, c.action_dim)}, got {tuple(action.shape)}"
            )
        # DINO-WM's action of frame t is the one taken there; ours at t led to frame t.
        taken = torch.cat([action[:, 1:], action.new_zeros(b, 1, c.action_dim)], 1)
        tokens = self._tokens(visual, proprio, taken)
        pred = self.predictor(tokens[:, : c.num_hist])
        target = tokens[:, 1:].detach()
        k = c.action_emb_dim
        z_loss = F.mse_loss(pred[..., :-k], target[..., :-k])
        e = self.encoder.embed_dim
        metrics = {
            "z_visual": F.mse_loss(pred[..., :e], target[..., :e]).detach(),
            "z_proprio": F.mse_loss(pred[..., e:-k], target[..., e:-k]).detach(),
        }
        outputs = {"tokens": tokens.detach(), "visual": visual}
        return LossOutput(z_loss, {"z": z_loss}, metrics, outputs)

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """Prediction loss plus, with a decoder, the reconstruction loss (one batch)."""
        out = self._prediction_loss(batch)
        if self.decoder is None:
            return out
        dec = self.phase_loss("decoder", batch, {"model": out})
        return LossOutput(out.total + dec.total, {**out.components, **dec.components}, out.metrics)
