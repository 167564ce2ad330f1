"""TD-MPC2: scalable, robust world models for continuous control.

Paper: Hansen, Su & Wang, "TD-MPC2: Scalable, Robust World Models for Continuous Control",
ICLR 2024 (arXiv:2310.16828). Reference implementation: nicklashansen/tdmpc2, read at commit
``e9f59321933cbc8e11a002b842adc7d4ffae8ff1`` (``tdmpc2/common/world_model.py``, ``layers.py``,
``math.py``, ``scale.py``, ``tdmpc2/tdmpc2.py``, ``config.yaml``, ``common/__init__.py``), and at
``b67b21c`` (the October 2023 release) for the ``legacy`` options. Facts only; the code is ours.

The model is implicit (no decoder): an encoder maps observations to a SimNorm latent ``z``, a
latent dynamics MLP predicts ``z'``, heads predict reward (two-hot), optional termination, a
squashed-Gaussian policy prior and an ensemble of two-hot Q-functions with an EMA target copy.
Acting plans with MPPI, or the planner of ``config.planner`` (:mod:`worldflux.planning`), or
uses the policy prior.

Axis legend: ``B`` batch / environments, ``T`` time, ``H`` horizon, ``E`` Q ensemble members,
``A`` action size, ``Z`` latent size, ``K`` two-hot bins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from worldflux.errors import ShapeError
from worldflux.models.tdmpc2.config import TDMPC2Config
from worldflux.models.tdmpc2.losses import (
    discount_vector,
    policy_sample,
    two_hot_bins,
    two_hot_value,
)
from worldflux.models.tdmpc2.training import TDMPC2Training
from worldflux.models.tdmpc2.weights import official_overrides, official_to_ours, with_targets
from worldflux.nn.ema import frozen_copy
from worldflux.nn.layers import count_parameters
from worldflux.nn.layers import init_trunc_normal as init_weights
from worldflux.nn.scale import PercentileScale
from worldflux.planning import MPPIPlanner, Planner, PlanningError, build_planner

#: How far outside [-1, 1] an action may stray (float rounding of a tanh or of a rescale).
ACTION_TOLERANCE = 1e-4


class TDMPC2(TDMPC2Training):
    """The TD-MPC2 world model and agent (see the module docstring).

    Parts (component slots): ``encoder``, ``dynamics``, ``reward``, ``termination`` (``None``
    unless ``episodic``), ``policy``, ``q_ensemble``; plus ``target_q`` (EMA copy of the Q
    ensemble, ``requires_grad=False``), ``task_emb`` (multitask only), the buffers
    ``action_masks (num_tasks, A)`` and ``discounts (num_tasks,)``, and ``scale`` (the running
    scale of the policy loss).
    """

    config_class = TDMPC2Config
    capabilities = frozenset({"encode", "transition", "rollout", "loss", "act", "plan"})
    component_slots = ("encoder", "dynamics", "reward", "termination", "policy", "q_ensemble")
    fsdp_wrap_units = ("Encoder", "LatentDynamics", "GaussianPolicyPrior", "QEnsemble")
    config: TDMPC2Config
    action_masks: Tensor
    discounts: Tensor

    def __init__(self, config: Mapping[str, Any] | TDMPC2Config) -> None:
        super().__init__(config)
        c = self.config
        td = c.effective_task_dim
        common = {"latent_dim": c.latent_dim, "task_dim": td}
        self.encoder = self.build_component(
            "encoder",
            obs_shape=list(c.obs_shape),
            enc_dim=c.enc_dim,
            num_enc_layers=c.num_enc_layers,
            simnorm_dim=c.simnorm_dim,
            **common,
        )
        self.dynamics = self.build_component(
            "dynamics",
            action_dim=c.action_dim,
            mlp_dim=c.mlp_dim,
            simnorm_dim=c.simnorm_dim,
            **common,
        )
        self.reward = self.build_component(
            "reward", action_dim=c.action_dim, mlp_dim=c.mlp_dim, num_bins=c.num_bins, **common
        )
        self.termination = (
            self.build_component("termination", mlp_dim=c.mlp_dim, **common) if c.episodic else None
        )
        self.policy = self.build_component(
            "policy",
            action_dim=c.action_dim,
            mlp_dim=c.mlp_dim,
            log_std_min=c.log_std_min,
            log_std_max=c.log_std_max,
            **common,
        )
        self.q_ensemble = self.build_component(
            "q_ensemble",
            action_dim=c.action_dim,
            mlp_dim=c.mlp_dim,
            num_bins=c.num_bins,
            num_q=c.num_q_networks,
            **common,
        )
        self.target_q = self._make_target(self.q_ensemble)
        self.task_emb = None
        if c.multitask:
            self.task_emb = nn.Embedding(c.num_tasks, c.task_dim, max_norm=1)
            init_weights(self.task_emb)
        masks = torch.ones(c.num_tasks, c.action_dim)
        for i, dims in enumerate(c.task_action_dims or []):
            masks[i, dims:] = 0.0
        self.register_buffer("action_masks", masks)
        self.register_buffer("discounts", discount_vector(c.task_discounts()))
        self.register_buffer("bins", two_hot_bins(c.num_bins, c.vmin, c.vmax), persistent=False)
        self.scale = PercentileScale(c.tau, limit=1.0, smooth="range")
        self.planner = self._build_planner()

    def _build_planner(self) -> Planner:
        """The planner of ``config.planner``, else MPPI with the preset's settings (the default)."""
        c = self.config
        if c.planner:
            return build_planner(c.planner, c.action_dim)
        return MPPIPlanner(
            c.action_dim,
            horizon=c.horizon,
            iterations=c.planning_iterations,
            num_samples=c.num_samples,
            num_elites=c.num_elites,
            num_pi_trajs=c.num_pi_trajs,
            min_std=c.min_std,
            max_std=c.max_std,
            temperature=c.temperature,
        )

    @staticmethod
    def _make_target(q: nn.Module) -> nn.Module:
        return frozen_copy(q)

    def train(self, mode: bool = True) -> TDMPC2:
        """Set train/eval mode; the target Q-functions always stay in eval mode (no dropout)."""
        super().train(mode)
        self.target_q.train(False)
        return self

    # ------------------------------------------------------------------ released agents
    @classmethod
    def reference_overrides(cls, state: Mapping[str, Tensor]) -> dict[str, Any]:
        """Spaces stored in an official TD-MPC2 state dict (:mod:`.weights`)."""
        return official_overrides(state)

    @classmethod
    def from_reference_state(cls, state: Mapping[str, Tensor], config: Any) -> dict[str, Tensor]:
        """Our state dict for an official TD-MPC2 state dict, either layout (:mod:`.weights`)."""
        return with_targets(official_to_ours(state))

    def replace_component(self, slot: str, component: nn.Module) -> None:
        """Install ``component`` in ``slot``; a new Q ensemble also gets a fresh target copy."""
        super().replace_component(slot, component)
        if slot == "q_ensemble":
            self.target_q = self._make_target(component)

    def parameter_breakdown(self) -> dict[str, int]:
        """Trainable parameters per part (the official counts' breakdown)."""
        parts = {slot: getattr(self, slot) for slot in self.component_slots}
        parts["task_emb"] = self.task_emb
        return {name: count_parameters(m) for name, m in parts.items()}

    # ------------------------------------------------------------------ input checks
    def _check_obs(self, obs: Any, lead: int) -> Tensor:
        """Tensor ``(*lead dims, *obs_shape)`` on the model's device; images scaled to [0, 1]."""
        if isinstance(obs, Mapping):
            if len(obs) != 1:
                raise ShapeError(f"TD-MPC2 takes one observation, got keys {sorted(obs)}")
            obs = next(iter(obs.values()))
        obs = torch.as_tensor(obs, device=self.device)
        shape = tuple(self.config.obs_shape)
        dims = ("B", "T")[:lead]
        want = f"({', '.join(dims)}, {', '.join(map(str, shape))})"
        if obs.dim() != lead + len(shape) or tuple(obs.shape[lead:]) != shape:
            raise ShapeError(f"observations must have shape {want}, got {tuple(obs.shape)}")
        self._check_lead(tuple(obs.shape[:lead]), dims, want)
        if obs.dtype == torch.uint8:
            return obs.float() / 255.0
        if obs.dtype == torch.bool or not (obs.is_floating_point() or obs.dtype == torch.uint8):
            raise ShapeError(f"observations must be float (or uint8 images), got {obs.dtype}")
        if not torch.isfinite(obs).all():
            raise ShapeError("observations must be finite, got NaN or infinite values")
        return obs.float()

    @staticmethod
    def _check_lead(lead: tuple[int, ...], names: tuple[str, ...], want: str) -> None:
        """Refuse empty batches: batch ``B``, time ``T`` and horizon ``H`` must be >= 1."""
        for name, size in zip(names, lead, strict=True):
            if size < 1:
                raise ShapeError(
                    f"{name} must be >= 1 in {want}, got {size}: TD-MPC2 cannot process an empty "
                    "batch or sequence"
                )

    def _check_action(
        self, action: Tensor, lead: tuple[int, ...] | None = None, names: str = "(B, T)"
    ) -> Tensor:
        """Finite actions in ``[-1, 1]`` (up to :data:`ACTION_TOLERANCE`), ``(*lead, A)``.

        Args:
            action: the actions.
            lead: the expected leading axes (``None``: any, but none of them empty).
            names: how to name the leading axes in error messages.
        """
        a = self.config.action_dim
        want = f"{names[:-1]}, {a})"
        if not isinstance(action, Tensor):
            raise ShapeError(f"actions must be a torch.Tensor of shape {want}")
        if action.dim() < 2 or action.shape[-1] != a:
            raise ShapeError(
                f"actions must have shape {want} with action_dim={a}, got {tuple(action.shape)}"
            )
        if lead is not None and tuple(action.shape[:-1]) != tuple(lead):
            raise ShapeError(
                f"actions must have shape {want} = {(*lead, a)}, got {tuple(action.shape)}"
            )
        dims = tuple(n.strip() for n in names.strip("()").split(","))
        self._check_lead(tuple(action.shape[:-1]), dims[: action.dim() - 1], want)
        action = action.to(self.device, torch.float32)
        if not torch.isfinite(action).all():
            raise ShapeError("actions must be finite, got NaN or infinite values")
        if action.abs().max() > 1.0 + ACTION_TOLERANCE:
            raise ShapeError(
                f"TD-MPC2 actions must lie in [-1, 1], got values in "
                f"[{action.min().item():.4g}, {action.max().item():.4g}]"
            )
        return action

    def _check_latent(self, z: Any) -> Tensor:
        """A finite latent state ``(B, Z)`` with ``B >= 1``, on the model's device."""
        size = self.config.latent_dim
        if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != size:
            got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ShapeError(f"the latent state must have shape (B, {size}), got {got}")
        self._check_lead((z.shape[0],), ("B",), f"(B, {size})")
        if not torch.isfinite(z).all():
            raise ShapeError("the latent state must be finite, got NaN or infinite values")
        return z.to(self.device)

    def _check_rewards(self, reward: Tensor) -> Tensor:
        """Finite rewards: a NaN would silently poison the reward and value targets."""
        if not torch.isfinite(reward).all():
            raise ShapeError("batch['reward'] must be finite, got NaN or infinite values")
        return reward

    def _check_task(self, task: Any, batch: int) -> Tensor | None:
        """Task ids ``(batch,)`` long, or ``None`` for single-task models."""
        n = self.config.num_tasks
        if not self.config.multitask:
            if task is not None and bool((torch.as_tensor(task) != 0).any()):
                raise ShapeError(f"this single-task model only knows task 0, got {task}")
            return None
        if task is None:
            raise ShapeError(f"this multitask model needs task ids in [0, {n}), got None")
        task = torch.as_tensor(task, device=self.device).long().reshape(-1)
        if task.numel() == 1:
            task = task.expand(batch)
        if task.shape != (batch,):
            raise ShapeError(f"task must be an int or a ({batch},) tensor, got {tuple(task.shape)}")
        if bool(((task < 0) | (task >= n)).any()):
            raise ShapeError(f"task ids must be in [0, {n}), got {task.tolist()}")
        return task

    # ------------------------------------------------------------------ the networks
    def _with_task(self, x: Tensor, task: Tensor | None, detach: bool = False) -> Tensor:
        """Concatenate the task embedding of ``task (B,)`` to ``x (B, ...)`` or ``(T, B, ...)``."""
        if self.task_emb is None or task is None:
            return x
        emb = self.task_emb(task)
        emb = emb.detach() if detach else emb
        return torch.cat([x, emb.expand(*x.shape[:-1], emb.shape[-1])], dim=-1)

    def _mask(self, task: Tensor | None) -> Tensor | None:
        return None if task is None else self.action_masks[task]

    def encode(self, obs: Any, task: Any = None) -> Tensor:
        """Latent ``z (B, Z)`` or ``(B, T, Z)`` of observations ``(B, [T,] *obs_shape)``."""
        lead = 2 if torch.as_tensor(obs).dim() == len(self.config.obs_shape) + 2 else 1
        obs = self._check_obs(obs, lead)
        task = self._check_task(task, obs.shape[0])
        if lead == 1:
            return self._encode(obs, task)
        return self._encode(obs.transpose(0, 1), task).transpose(0, 1)

    def _encode(self, obs: Tensor, task: Tensor | None) -> Tensor:
        """Checked, scaled ``obs (..., B, *obs_shape)`` -> ``z (..., B, Z)``; ``task (B,)``."""
        n = len(self.config.obs_shape)
        lead = obs.shape[:-n]
        flat = obs.reshape(-1, *obs.shape[-n:])
        if task is not None:
            flat = self._with_task(flat, task.expand(*lead).reshape(-1))
        return self.encoder(flat).reshape(*lead, -1)

    def next(self, z: Tensor, action: Tensor, task: Tensor | None = None) -> Tensor:
        """Latent dynamics ``z' (.., Z)``."""
        return self.dynamics(torch.cat([self._with_task(z, task), action], dim=-1))

    def reward_logits(self, z: Tensor, action: Tensor, task: Tensor | None = None) -> Tensor:
        """Reward logits ``(.., K)``."""
        return self.reward(torch.cat([self._with_task(z, task), action], dim=-1))

    def q_logits(
        self,
        z: Tensor,
        action: Tensor,
        task: Tensor | None = None,
        *,
        target: bool = False,
        detach: bool = False,
        detach_task: bool = False,
        members: Tensor | None = None,
    ) -> Tensor:
        """Logits ``(E, .., K)`` of the Q-functions ``members`` (all by default), of the target
        copy if ``target``."""
        x = torch.cat([self._with_task(z, task, detach=detach_task), action], dim=-1)
        if target:
            return self.target_q(x, members=members)
        return self.q_ensemble(x, detach=detach, members=members)

    def q_value(
        self,
        z: Tensor,
        action: Tensor,
        task: Tensor | None = None,
        *,
        reduce: str = "min",
        **kwargs: Any,
    ) -> Tensor:
        """``min`` or ``avg`` of two randomly chosen Q-functions' values ``(..)``."""
        pair = torch.randperm(self.config.num_q_networks, device=z.device)[:2]
        q = two_hot_value(self.q_logits(z, action, task, members=pair, **kwargs), self.bins)
        return q.min(0).values if reduce == "min" else q.mean(0)

    def pi(
        self, z: Tensor, task: Tensor | None = None, detach_task: bool = False
    ) -> dict[str, Tensor]:
        """Sample of the policy prior (see :func:`~worldflux.models.tdmpc2.losses.policy_sample`)."""
        mean, log_std = self.policy(self._with_task(z, task, detach=detach_task))
        mask = self._mask(task)
        if mask is not None and mask.dim() < mean.dim():
            mask = mask.expand_as(mean)
        return policy_sample(mean, log_std, mask, self.config.entropy_form)

    def termination_logit(self, z: Tensor, task: Tensor | None = None) -> Tensor | None:
        """Termination logit ``(..)`` of arriving in ``z`` (``None`` for non-episodic models)."""
        if self.termination is None:
            return None
        return self.termination(self._with_task(z, task))

    def discount_for(self, task: Tensor | None, batch: int) -> Tensor:
        """Discount per row ``(batch,)``."""
        if task is None:
            return self.discounts[0].expand(batch)
        return self.discounts[task]

    # ------------------------------------------------------------------ the contract
    def transition(self, state: Tensor, action: Tensor, task: Any = None) -> Tensor:
        """One latent step ``z (B, Z)``, ``action (B, A)`` -> ``z' (B, Z)``."""
        state = self._check_latent(state)
        action = self._check_action(action, (state.shape[0],), "(B)")
        return self.next(state, action, self._check_task(task, state.shape[0]))

    def rollout(self, state: Tensor, actions: Tensor, task: Any = None) -> dict[str, Tensor]:
        """Imagine ``actions (B, H, A)`` from ``z (B, Z)``: ``latent (B, H, Z)``, ``reward (B, H)``."""
        state = self._check_latent(state)
        if not isinstance(actions, Tensor) or actions.dim() != 3:
            got = getattr(actions, "shape", type(actions).__name__)
            raise ShapeError(f"rollout actions must have shape (B, H, A), got {got}")
        actions = self._check_action(actions, (state.shape[0], actions.shape[1]), "(B, H)")
        task = self._check_task(task, state.shape[0])
        z, latents, rewards = state, [], []
        for t in range(actions.shape[1]):
            rewards.append(two_hot_value(self.reward_logits(z, actions[:, t], task), self.bins))
            z = self.next(z, actions[:, t], task)
            latents.append(z)
        return {"latent": torch.stack(latents, 1), "reward": torch.stack(rewards, 1)}

    # ------------------------------------------------------------------ planning protocol
    def plan_next(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        """Latent dynamics for :class:`~worldflux.planning.MPPIPlanner`."""
        return self.next(z, action, task)

    def plan_reward(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        """Predicted reward ``(N,)`` for the planner."""
        return two_hot_value(self.reward_logits(z, action, task), self.bins)

    def plan_value(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        """Average of two random Q-functions ``(N,)`` for the planner."""
        return self.q_value(z, action, task, reduce="avg")

    def plan_policy(self, z: Tensor, task: Tensor | None) -> Tensor:
        """Sampled policy-prior action ``(N, A)`` for the planner."""
        return self.pi(z, task)["action"]

    def plan_encode(self, obs: Any, task: Tensor | None) -> Tensor:
        """Latent ``(B, Z)`` of (goal) observations ``(B, *obs_shape)`` for goal planning."""
        obs = self._check_obs(obs, 1)
        return self._encode(obs, task)

    def plan_termination(self, z: Tensor, task: Tensor | None) -> Tensor | None:
        """Termination probability ``(N,)`` for the planner (``None`` if not episodic)."""
        logit = self.termination_logit(z, task)
        return None if logit is None else torch.sigmoid(logit)

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(  # type: ignore[override]  # adds the keyword-only acting options
        self,
        obs: Any,
        state: Any = None,
        *,
        first: Any = None,
        t0: Any = None,
        eval_mode: bool = False,
        task: Any = None,
        goal: Any = None,
    ) -> tuple[Tensor, Any]:
        """Actions ``(B, A)`` in ``[-1, 1]`` for ``B`` environments.

        Args:
            obs: observations ``(B, *obs_shape)`` (uint8 images are scaled to [0, 1]).
            state: ``None`` or the dict returned by the previous call, ``{"prev_mean": (B, H, A)}``
                (the previous MPPI plan per environment, the warm start).
            first: ``(B,)`` bool, environments that were just reset (no warm start).
            t0: bool or ``(B,)`` bool, same meaning as ``first`` (the official name).
            eval_mode: act with the mean (policy) or without exploration noise (MPPI).
            task: task id (int or ``(B,)``) for multitask models.
            goal: goal observations ``(B, *obs_shape)`` for a planner with ``objective: goal``
                (encoded, then the planner minimises the latent distance to them).

        Returns:
            ``(action, state)``; with ``mpc=False`` the state is passed through unchanged.
        """
        obs = self._check_obs(obs, 1)
        b = obs.shape[0]
        task = self._check_task(task, b)
        was_training = self.training
        self.train(False)
        try:
            z = self._encode(obs, task)
            goal_z = None if goal is None else self.plan_encode(goal, task)
            if not self.config.mpc:
                if goal_z is not None:
                    raise PlanningError("a goal needs planning: mpc=false acts with the policy")
                sample = self.pi(z, task)
                return (sample["mean"] if eval_mode else sample["action"]), state
            prev = None if state is None else state["prev_mean"].to(z.device)
            reset = torch.zeros(b, dtype=torch.bool, device=z.device)
            for flag in (first, t0):
                if flag is not None:
                    reset |= torch.as_tensor(flag, device=z.device).bool().reshape(-1).expand(b)
            if prev is not None:
                prev = prev * (~reset).to(prev.dtype)[:, None, None]
            result = self.planner.plan(
                self,
                z,
                prev_mean=prev,
                discount=self.discount_for(task, b),
                task=task,
                action_mask=self._mask(task),
                eval_mode=eval_mode,
                goal=goal_z,
            )
            return result.action, {"prev_mean": result.mean}
        finally:
            self.train(was_training)
