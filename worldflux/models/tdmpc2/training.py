"""TD-MPC2's losses and update step (the training half of :class:`~worldflux.models.tdmpc2.TDMPC2`).

One update (``TDMPC2._update`` and ``update_pi`` of nicklashansen/tdmpc2 at ``e9f5932``):

1. TD targets without gradients: ``r + gamma (1 - done) min(Q'_i, Q'_j)(z', pi(z'))`` with ``z'``
   the encoded next observations and ``i, j`` two random members of the EMA target ensemble.
2. World model: roll the latent forward from the first encoded observation through the batch's
   actions; latent consistency (MSE to the encoded next observation), two-hot reward and value
   cross-entropies, termination BCE (episodic), each step weighted by ``rho^t``; Adam with the
   encoder at ``enc_lr_scale`` of the learning rate, gradient norm clipped to ``grad_clip_norm``.
3. Policy prior on the detached rolled-out latents: maximise the scale-normalised average of two
   random Q-functions (their parameters detached) plus ``entropy_coef`` times the scaled
   entropy, weighted by ``rho^t``; separate Adam (``eps 1e-5``), same clipping.
4. EMA of the target Q-functions with rate ``tau``.

Batch format (:mod:`worldflux.core.model`): step ``t`` holds ``obs[t]`` and the ``action[t]`` and
``reward[t]`` that led to it, so a TD-MPC2 transition is ``(obs[t], action[t+1], reward[t+1],
terminal[t+1], obs[t+1])``. Sequences longer than ``horizon + 1`` are cut into windows of
``horizon + 1`` steps overlapping by one step; steps after an episode start (``first``) inside a
window are masked out of every loss.

Axis legend: ``B`` batch, ``T`` time, ``H`` horizon, ``N`` windows x batch, ``E`` Q members,
``Z`` latent size, ``A`` action size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from worldflux.core.model import LossOutput, WorldModel
from worldflux.errors import ShapeError
from worldflux.models.tdmpc2.config import TDMPC2Config
from worldflux.models.tdmpc2.losses import masked_mean, soft_ce
from worldflux.nn.ema import ema_update
from worldflux.nn.scale import PercentileScale


class TDMPC2Training(WorldModel):
    """Losses and phase hooks of TD-MPC2 (the generic phase step runs them)."""

    config: TDMPC2Config
    encoder: torch.nn.Module
    dynamics: torch.nn.Module
    reward: torch.nn.Module
    termination: torch.nn.Module | None
    policy: torch.nn.Module
    q_ensemble: torch.nn.Module
    task_emb: torch.nn.Embedding | None
    target_q: torch.nn.Module
    bins: Tensor
    scale: PercentileScale
    # Inductor's joint-graph pattern matcher fails on the world-model loss in torch 2.13 ("Not all
    # inputs to pattern found in match.kwargs ... slice_shape"); compiling without it works.
    compile_options = {"options": {"pattern_matcher": False}}

    if TYPE_CHECKING:  # defined by TDMPC2 (module.py)

        def _check_obs(self, obs: Any, lead: int) -> Tensor: ...
        def _check_action(self, action: Tensor) -> Tensor: ...
        def _check_rewards(self, reward: Tensor) -> Tensor: ...
        def _check_task(self, task: Any, batch: int) -> Tensor | None: ...
        def _encode(self, obs: Tensor, task: Tensor | None) -> Tensor: ...
        def next(self, z: Tensor, action: Tensor, task: Tensor | None = None) -> Tensor: ...
        def reward_logits(
            self, z: Tensor, action: Tensor, task: Tensor | None = None
        ) -> Tensor: ...
        def q_value(
            self, z: Tensor, action: Tensor, task: Tensor | None = None, **kw: Any
        ) -> Tensor: ...
        def pi(
            self, z: Tensor, task: Tensor | None = None, detach_task: bool = False
        ) -> dict[str, Tensor]: ...
        def termination_logit(self, z: Tensor, task: Tensor | None = None) -> Tensor | None: ...
        def discount_for(self, task: Tensor | None, batch: int) -> Tensor: ...

    # ------------------------------------------------------------------ batch
    def _windows(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Time-first windows: obs ``(H+1, N, ...)``, action ``(H, N, A)``, reward / terminal /
        valid ``(H, N)``, task ``(N,)`` or ``None``."""
        h = self.config.horizon
        obs = self._check_obs(batch["obs"], 2)
        b, t = obs.shape[:2]
        if t < h + 1:
            raise ShapeError(
                f"TD-MPC2 trains on sequences of at least horizon + 1 = {h + 1} steps, got T={t}"
            )
        action = self._check_action(torch.as_tensor(batch["action"]))
        if tuple(action.shape[:2]) != (b, t):
            raise ShapeError(
                f"action must have shape (B, T, A) = ({b}, {t}, "
                f"{self.config.action_dim}), got {tuple(action.shape)}"
            )

        def seq(key: str, dtype: torch.dtype) -> Tensor:
            if key not in batch:
                return torch.zeros(b, t, dtype=dtype, device=self.device)
            x = torch.as_tensor(batch[key], device=self.device).to(dtype)
            if tuple(x.shape) != (b, t):
                raise ShapeError(f"{key} must have shape (B, T) = ({b}, {t}), got {tuple(x.shape)}")
            return x

        reward, first = self._check_rewards(seq("reward", torch.float32)), seq("first", torch.bool)
        terminal = seq("terminal", torch.float32)
        task = self._check_task(batch.get("task"), b)
        starts = range(0, t - h, h)

        def win(x: Tensor, lo: int) -> Tensor:
            # (B, T, ...) -> (H + 1 - lo, windows x B, ...), window k covering steps kH .. kH + H
            return torch.cat([x[:, s + lo : s + h + 1].transpose(0, 1) for s in starts], dim=1)

        valid = (~win(first, 1)).float().cumprod(0)
        return {
            "obs": win(obs, 0),
            "action": win(action, 1),
            "reward": win(reward, 1),
            "terminal": win(terminal, 1),
            "valid": valid,
            "task": None if task is None else task.repeat(len(starts)),
        }

    # ------------------------------------------------------------------ losses
    @torch.no_grad()
    def td_target(
        self, next_z: Tensor, reward: Tensor, terminal: Tensor, task: Tensor | None
    ) -> Tensor:
        """``r + gamma (1 - terminal) min of two target Qs at (z', pi(z'))``, shape ``(H, N)``."""
        action = self.pi(next_z, task)["action"]
        discount = self.discount_for(task, next_z.shape[1])
        q = self.q_value(next_z, action, task, reduce="min", target=True)
        return reward + discount * (1 - terminal) * q

    def world_model_loss(self, w: Mapping[str, Any]) -> tuple[LossOutput, Tensor]:
        """Consistency, reward, value and termination losses on windows ``w``; also returns the
        rolled-out latents ``(H+1, N, Z)``."""
        c, h = self.config, self.config.horizon
        task, valid = w["task"], w["valid"]
        with torch.no_grad():
            next_z = self._encode(w["obs"][1:], task)
            td = self.td_target(next_z, w["reward"], w["terminal"], task)
        z = self._encode(w["obs"][0], task)
        zs, consistency = [z], z.new_zeros(())
        for t in range(h):
            z = self.next(z, w["action"][t], task)
            sq = (z - next_z[t]).pow(2)
            consistency = consistency + masked_mean(sq, valid[t]) * c.rho**t
            zs.append(z)
        z_all = torch.stack(zs)
        qs = self.q_logits(z_all[:-1], w["action"], task)  # type: ignore[operator]  # (E,H,N,K)
        reward_logits = self.reward_logits(z_all[:-1], w["action"], task)
        reward_loss, value_loss = z.new_zeros(()), z.new_zeros(())
        for t in range(h):
            weight = c.rho**t
            reward_loss = (
                reward_loss
                + masked_mean(soft_ce(reward_logits[t], w["reward"][t], self.bins), valid[t])
                * weight
            )
            for q in range(qs.shape[0]):
                value_loss = (
                    value_loss + masked_mean(soft_ce(qs[q, t], td[t], self.bins), valid[t]) * weight
                )
        consistency, reward_loss = consistency / h, reward_loss / h
        value_loss = value_loss / (h * qs.shape[0])
        termination_loss = z.new_zeros(())
        logit = self.termination_logit(z_all[1:], task)
        if logit is not None:
            bce = F.binary_cross_entropy_with_logits(logit, w["terminal"], reduction="none")
            termination_loss = (bce * valid).sum() / valid.sum().clamp(min=1.0)
        components = {
            "consistency": c.consistency_coef * consistency,
            "reward": c.reward_coef * reward_loss,
            "value": c.value_coef * value_loss,
            "termination": c.termination_coef * termination_loss,
        }
        metrics = {
            "consistency": consistency,
            "reward": reward_loss,
            "value": value_loss,
            "termination": termination_loss,
            "td_target": td.mean(),
        }
        total = sum(components.values(), z.new_zeros(()))
        return LossOutput(total, components, {k: v.detach() for k, v in metrics.items()}), z_all

    def policy_loss(
        self,
        zs: Tensor,
        task: Tensor | None,
        valid: Tensor | None = None,
        update_scale: bool = False,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Policy-prior loss on detached latents ``zs (H+1, N, Z)``.

        Gradients reach only the policy network: the latents, the Q-functions' parameters and the
        task embedding are detached.
        """
        c = self.config
        zs = zs.detach()
        sample = self.pi(zs, task, detach_task=True)
        dropout_was = self.q_ensemble.training
        self.q_ensemble.train(dropout_was and c.policy_q_dropout)
        try:
            q = self.q_value(
                zs, sample["action"], task, reduce="avg", detach=True, detach_task=True
            )
        finally:
            self.q_ensemble.train(dropout_was)
        if update_scale:
            self.scale.update(q[0])
        q = q / self.scale.scale()
        objective = -(c.entropy_coef * sample["scaled_entropy"] + q)  # (H+1, N)
        if valid is not None:
            valid = torch.cat([torch.ones_like(valid[:1]), valid], 0)
        steps = torch.stack(
            [
                masked_mean(objective[t], None if valid is None else valid[t])
                for t in range(objective.shape[0])
            ]
        )
        rho = c.rho ** torch.arange(steps.shape[0], device=steps.device, dtype=steps.dtype)
        loss = (steps * rho).mean()
        info = {
            "entropy": sample["entropy"].mean().detach(),
            "scaled_entropy": sample["scaled_entropy"].mean().detach(),
            "scale": self.scale.scale().detach(),
        }
        return loss, info

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """World-model loss (``total``) on ``batch``; the policy loss is reported in ``metrics``."""
        w = self._windows(batch)
        out, zs = self.world_model_loss(w)
        pi_loss, info = self.policy_loss(zs, w["task"], w["valid"])
        out.metrics.update({"policy": pi_loss.detach(), **info})
        return out

    # ------------------------------------------------------------------ phases
    # Two phases (conf/model/tdmpc2/base.yaml): "model" (Adam, encoder at enc_lr_scale, clipped)
    # and "policy" (Adam eps 1e-5, clipped), which trains on the model phase's batch and reads the
    # latents it rolled out (LossOutput.outputs), exactly as the official update does.
    def phase_loss(
        self, name: str, batch: Mapping[str, Any], outputs: Mapping[str, LossOutput]
    ) -> LossOutput:
        """``model``: the world-model loss on ``batch``; ``policy``: the policy-prior loss on the
        model phase's rolled-out latents."""
        if name == "model":
            w = self._windows(batch)
            out, zs = self.world_model_loss(w)
            return LossOutput(
                out.total,
                out.components,
                {"value/td_target": out.metrics["td_target"]},
                {"zs": zs, "windows": w},
            )
        if name == "policy":
            if "model" not in outputs:
                raise ShapeError("the TD-MPC2 policy phase needs the model phase's latents")
            prev = outputs["model"].outputs
            w = prev["windows"]
            loss, info = self.policy_loss(prev["zs"], w["task"], w["valid"], update_scale=True)
            return LossOutput(loss, {}, {f"policy/{k}": v for k, v in info.items()})
        raise ShapeError(f"TD-MPC2 has phases 'model' and 'policy', not {name!r}")

    def after_phase(self, name: str) -> None:
        """The target Q-functions follow the online ones after the policy step."""
        if name == "policy":
            self.update_targets()

    def model_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters trained by the model phase (everything but the policy and targets)."""
        return self.phase_parameters(self.schedule.by_name["model"])

    def build_optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """The model phase's and the policy phase's optimisers."""
        model_opt, pi_opt = self.configure_optimizers()
        return model_opt, pi_opt

    @torch.no_grad()
    def update_targets(self) -> None:
        """EMA of the target Q-functions: ``target <- target + tau (online - target)``."""
        ema_update(self.target_q, self.q_ensemble, self.config.tau)

    def update(self, batch: Mapping[str, Any], model_opt: Any, pi_opt: Any) -> dict[str, Tensor]:
        """One TD-MPC2 update on ``batch`` outside Lightning (the generic phase step).

        Returns detached metrics keyed ``group/name``; ``loss/total`` is the world-model loss, as
        in the official code (the logged ``train/loss/total`` sums both phases).
        """
        metrics, _ = self.run_update({"model": batch, "policy": batch}, [model_opt, pi_opt])
        metrics["loss/total"] = metrics["loss/model"]
        return metrics
