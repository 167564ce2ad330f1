"""JEPA: a joint-embedding predictive world model that plans toward goal observations.

``jepa:base`` is PLDM (Sobal et al., "Learning from Reward-Free Offline Data: A Case for Planning
with Latent Dynamics Models", 2025; reference implementation vladisai/PLDM @ cbaf674, two-rooms
/wall config ``pldm/configs/wall/icml/noise0.yaml``). An IMPALA encoder embeds each observation;
a GRU predictor, started from the first embedding, rolls the embedding forward with the actions;
training matches predictions to encodings and keeps the encodings informative with VICReg terms
and an inverse-dynamics head, with no pixel reconstruction (``losses.py``). Acting plans in the
embedding space toward the embedding of a goal observation with a shared planner
(``act(obs, state, goal=...)``, MPPI by default, docs/planning.md).

Difference from the reference: PLDM builds the inverse-dynamics head but never hands it to its
optimiser (``OptimizerFactory`` optimises ``model.level1`` only), so the head stays at its random
initialisation while its loss still shapes the encoder. We train it (the paper's intent); the
reference's trainable count (``meta.official_params``) is the setting ``idm_coeff: 0``.

Axis legend: ``B`` batch or environments, ``T`` time, ``H`` horizon, ``Z`` embedding size,
``A`` action size, ``C, Hh, W`` image channels, height, width.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from worldflux.core.model import LossOutput, WorldModel
from worldflux.core.protocols import Rollout
from worldflux.errors import ConfigError, ShapeError
from worldflux.models.jepa import losses
from worldflux.models.jepa.config import JEPAConfig
from worldflux.planning.protocol import PlanningError


class JEPA(WorldModel):
    """PLDM: IMPALA encoder, GRU predictor, VICReg + inverse-dynamics training, goal planning."""

    config: JEPAConfig
    config_class = JEPAConfig
    capabilities = frozenset({"encode", "transition", "rollout", "loss", "goal"})
    component_slots = ("encoder", "predictor", "idm")
    fsdp_wrap_units = ("ResidualBlock",)  # the IMPALA encoder's residual blocks

    def __init__(self, config: Mapping[str, Any] | JEPAConfig) -> None:
        super().__init__(config)
        c = self.config
        kinds = [m["kind"] for m in c.modalities().values()]
        if kinds != ["image"]:
            raise ConfigError(
                f"PLDM takes one image observation (C, H, W), got modalities {kinds}; "
                "jepa:dino_wm takes an image plus a proprioception vector"
            )
        shape = next(iter(c.modalities().values()))["shape"]
        self.obs_shape = tuple(int(s) for s in shape)
        self.encoder = self.build_component(
            "encoder", obs_shape=list(shape), latent_dim=c.latent_dim
        )
        self.predictor = self.build_component(
            "predictor", action_dim=c.action_dim, latent_dim=c.latent_dim
        )
        self.idm = (
            self.build_component("idm", latent_dim=c.latent_dim, action_dim=c.action_dim)
            if c.idm_coeff > 0
            else None
        )
        self.planner = None
        if c.planner:
            from worldflux.planning import build_planner

            self.planner = build_planner(c.planner, c.action_dim)

    # ------------------------------------------------------------------ inputs
    def _param_device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def _images(self, obs: Any, lead: int | None, name: str = "obs") -> Tensor:
        """Float images ``(*lead, C, Hh, W)`` in ``[0, 1]`` (uint8 scaled) on the model's device."""
        if isinstance(obs, Mapping):
            if len(obs) != 1:
                raise ShapeError(f"{name} must hold one image modality, got keys {sorted(obs)}")
            obs = next(iter(obs.values()))
        x = torch.as_tensor(obs, device=self._param_device())
        ok = tuple(x.shape[x.dim() - 3 :]) == self.obs_shape and (
            lead is None or x.dim() == 3 + lead
        )
        if not ok or x.dim() < 4:
            want = {None: "(B, *obs_shape) or (B, T, *obs_shape)", 1: "(B, *obs_shape)"}.get(
                lead, "(B, T, *obs_shape)"
            )
            raise ShapeError(
                f"{name} must have shape {want} with obs_shape {list(self.obs_shape)}, got "
                f"{tuple(x.shape)}"
            )
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()

    # ------------------------------------------------------------------ the contract
    def encode(self, obs: Tensor | Mapping[str, Tensor]) -> Tensor:
        """Embeddings ``(B, Z)`` of ``(B, C, Hh, W)`` or ``(B, T, Z)`` of ``(B, T, C, Hh, W)``."""
        x = self._images(obs, None)
        lead = x.shape[:-3]
        return self.encoder(x.reshape(-1, *self.obs_shape)).reshape(*lead, -1)

    def transition(self, state: Tensor, action: Tensor) -> Tensor:
        """The predicted next embedding ``(B, Z)`` from ``state (B, Z)`` under ``action (B, A)``."""
        z = self.predictor(state, action)
        return self.encoder.norm(z) if self.config.tie_norm else z

    def rollout(self, state: Tensor, actions: Tensor) -> Rollout:
        """Embeddings ``(B, H, Z)`` predicted from ``state (B, Z)`` under ``actions (B, H, A)``."""
        if actions.dim() != 3 or actions.shape[-1] != self.config.action_dim:
            raise ShapeError(
                f"actions must have shape (B, H, {self.config.action_dim}), got "
                f"{tuple(actions.shape)}"
            )
        states, z = [], state
        for t in range(actions.shape[1]):
            z = self.transition(z, actions[:, t])
            states.append(z)
        return Rollout(states=torch.stack(states, 1), actions=actions)

    # ------------------------------------------------------------------ planning
    def plan_encode(self, obs: Any, task: Tensor | None) -> Tensor:
        """Embedding ``(B, Z)`` of (goal) observations ``(B, *obs_shape)``."""
        return self.encoder(self._images(obs, 1, "goal"))

    def plan_next(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        """One predictor step ``(N, Z)`` (the planners' latent interface)."""
        return self.transition(z, action)

    def score_goal(self, state: Tensor, goal: Any) -> Tensor:
        """Minus the Euclidean distance ``(B,)`` of embeddings ``state (B, Z)`` to the goal's."""
        return -(state - self.plan_encode(goal, None)).pow(2).sum(-1).sqrt()

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
        """Plan toward ``goal`` and return the first action ``(B, A)`` and the agent state.

        Args:
            obs: current observations ``(B, *obs_shape)``; images may be uint8.
            state: the previous agent state (``{"plan_mean": (B, H, A)}``, the warm start) or
                ``None``.
            first: ``(B,)`` bool, environments that were just reset (no warm start).
            eval_mode: no exploration noise on the action.
            task: unused.
            goal: goal observations ``(B, *obs_shape)``; required.

        Raises:
            PlanningError: no goal, or no planner configured.
            ShapeError: observations or goal of the wrong shape.
        """
        if self.planner is None:
            raise PlanningError("jepa acts by planning toward a goal; config.planner is null")
        if goal is None:
            raise PlanningError(
                "jepa plans toward a goal observation: pass act(obs, state, goal=<(B, "
                f"{', '.join(map(str, self.obs_shape))}) observation>)"
            )
        z = self.plan_encode(obs, None)
        goal_z = self.plan_encode(goal, None)
        if goal_z.shape[0] != z.shape[0]:
            raise ShapeError(
                f"goal must hold one goal per observation: {z.shape[0]} observations, "
                f"{goal_z.shape[0]} goals"
            )
        prev = None if state is None else state.get("plan_mean")
        if prev is not None and first is not None:
            prev = prev * (~first.to(prev.device).view(-1)).to(prev.dtype)[:, None, None]
        result = self.planner.plan(self, z, prev_mean=prev, eval_mode=eval_mode, goal=goal_z)
        return result.action, {"plan_mean": result.mean}

    # ------------------------------------------------------------------ training
    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """PLDM's loss on a batch of sequences (see :mod:`worldflux.models.jepa.losses`)."""
        c = self.config
        x = self._images(batch["obs"], 2)
        b, t = x.shape[:2]
        enc = self.encoder(x.flatten(0, 1)).reshape(b, t, -1)
        if t < 2:
            raise ShapeError(f"jepa trains on sequences of T >= 2 steps, got T={t}")
        action = torch.as_tensor(batch["action"], device=enc.device).float()
        if action.shape != (b, t, c.action_dim):
            raise ShapeError(
                f"action must have shape (B, T, A) = {(b, t, c.action_dim)}, got "
                f"{tuple(action.shape)}"
            )
        first = batch.get("first")
        first = (
            torch.zeros(b, t, dtype=torch.bool, device=enc.device)
            if first is None
            else torch.as_tensor(first, device=enc.device).bool()
        )
        # Roll out from the first embedding; a new episode inside the window restarts from its
        # own embedding (action[t] is the action that led to obs[t]).
        preds = [enc[:, 0]]
        for i in range(1, t):
            step = self.transition(preds[-1], action[:, i])
            preds.append(torch.where(first[:, i, None], enc[:, i], step))
        pred = torch.stack(preds, 1)
        valid = ~first[:, 1:]
        terms = losses.pldm_terms(enc, pred, valid, c.std_margin, c.std_margin_t)
        weights = {
            "sim": c.sim_coeff,
            "std": c.std_coeff,
            "cov": c.cov_coeff,
            "std_t": c.std_coeff_t,
            "sim_t": c.sim_coeff_t,
        }
        components = {k: weights[k] * v for k, v in terms.items()}
        if self.idm is not None:
            idm = losses.idm_loss(self.idm(enc[:, :-1], enc[:, 1:]), action[:, 1:], valid)
            components["idm"] = c.idm_coeff * idm
        total = sum(components.values(), enc.new_zeros(()))
        metrics = {"embed_std": enc[:, 0].detach().std(0).mean()}
        return LossOutput(total, components, metrics)

    def phase_loss(
        self, name: str, batch: Mapping[str, Any], outputs: Mapping[str, LossOutput]
    ) -> LossOutput:
        """The single ``model`` phase: :meth:`loss`."""
        return self.loss(batch)

    def _apply_warmup(self, phase: Any, opt: Any) -> None:
        """PLDM's schedule: 10% linear warm-up, then cosine to ``lr_final_scale * lr``.

        Over ``config.lr_schedule_steps`` updates (``pldm/optimizers/schedulers.py``); with ``0``
        the phase's own warm-up (if any) applies and the rate stays constant.
        """
        total = self.config.lr_schedule_steps
        if total <= 0:
            super()._apply_warmup(phase, opt)
            return
        step = self.phase_steps[phase.name]
        warm = int(0.1 * total)
        if step < warm:
            scale = step / warm
        else:
            q = 0.5 * (1 + math.cos(math.pi * min(step - warm, total - warm) / (total - warm)))
            scale = q + self.config.lr_final_scale * (1 - q)
        for group in getattr(opt, "optimizer", opt).param_groups:
            group.setdefault("base_lr", group["lr"])
            group["lr"] = group["base_lr"] * scale
