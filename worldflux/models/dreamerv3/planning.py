"""DreamerV3 as a planning model: latent planning methods for :mod:`worldflux.planning`.

DreamerV3 acts with its actor by default. When its config names a planner (``planner=mppi``,
``planner=cem`` or ``planner=gradient`` on the command line, ``config.planner`` in Python), it
acts by planning in its latent space instead. The planner sees a flat latent
``z = [deter, flat stoch]`` (the model features ``(N, F)``) and these methods:

- ``plan_next``: one RSSM prior step (the mode of the prior, so a plan is scored on one
  deterministic imagined trajectory);
- ``plan_reward``: the reward head's prediction at the state the action leads to (DreamerV3's
  reward is the one received on arriving);
- ``plan_value``: the critic's value of ``z`` (a state value; the action is ignored);
- ``plan_termination``: ``1 - continue`` probability of the state;
- ``plan_policy``: a sample of the actor (a policy prior for MPPI's ``num_pi_trajs``);
- ``plan_encode``: the posterior features of a (goal) observation from a fresh state.

Discrete actions are planned in a continuous relaxation: a planner action ``(N, A)`` in
``[-1, 1]`` stands for the one-hot of its largest entry, and the actor's one-hot samples map to
``2 * onehot - 1``. The executed action is that one-hot; gradients pass through the argmax as
through a softmax (straight-through), for the gradient planner.

Axis legend: ``B`` environments, ``N`` flat batch of latents, ``F = D + S * K`` feature size,
``D`` deter size, ``S`` stochastic latents, ``K`` classes, ``A`` action size, ``H`` horizon.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from worldflux.models.dreamerv3 import inputs
from worldflux.models.dreamerv3.losses import features

State = dict[str, Tensor]


class DreamerV3Planning:
    """Mixin of :class:`~worldflux.models.dreamerv3.module.DreamerV3` (see the module docstring)."""

    config: Any
    dynamics: Any
    reward_head: Any
    continue_head: Any
    value: Any
    policy: Any
    encoder: Any
    modalities: Any
    planner: Any
    _param_device: Any

    def build_planner(self) -> Any:
        """The planner of ``config.planner``, or ``None`` (act with the actor)."""
        if not self.config.planner:
            return None
        from worldflux.planning import build_planner

        return build_planner(self.config.planner, self.config.action_dim)

    # ------------------------------------------------------------------ flat latents
    def _split(self, z: Tensor) -> State:
        """``z (N, F)`` -> ``{"deter": (N, D), "stoch": (N, S, K)}``."""
        c = self.config
        deter, stoch = z.split([c.deter_dim, c.stoch_dim * c.classes], -1)
        return {"deter": deter, "stoch": stoch.reshape(-1, c.stoch_dim, c.classes)}

    def _model_action(self, action: Tensor) -> Tensor:
        """A planner action ``(N, A)`` as the model takes it (one-hot of the argmax if discrete)."""
        if self.config.action_kind == "discrete":
            hard = F.one_hot(action.argmax(-1), self.config.action_dim).to(action.dtype)
            if not action.requires_grad:
                return hard
            # Straight-through: the one-hot forward, the softmax's gradient backward, so the
            # gradient planner can optimise discrete actions too.
            soft = torch.softmax(action, -1)
            return hard + soft - soft.detach()
        return action

    # ------------------------------------------------------------------ planning protocol
    def plan_next(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        """Features ``(N, F)`` after one prior step under ``action (N, A)``."""
        nxt = self.dynamics.img_step(self._split(z), self._model_action(action), sample=False)
        return features(nxt)

    def plan_reward(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        """Predicted reward ``(N,)`` received on arriving from ``z`` under ``action``."""
        nxt = self.plan_next(z, action, task)
        return self.reward_head.pred(self.reward_head(nxt))

    def plan_value(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        """The critic's value ``(N,)`` of ``z``."""
        return self.value.pred(self.value(z))

    def plan_termination(self, z: Tensor, task: Tensor | None) -> Tensor:
        """Termination probability ``(N,)`` of ``z`` (one minus the continue probability)."""
        return 1.0 - self.continue_head.prob(self.continue_head(z))

    def plan_policy(self, z: Tensor, task: Tensor | None) -> Tensor:
        """A sample of the actor ``(N, A)`` in the planner's action space."""
        action = self.policy(z).sample()
        if self.config.action_kind == "discrete":
            return 2.0 * action - 1.0
        return action.clamp(-1.0, 1.0)

    def plan_encode(self, obs: Any, task: Tensor | None) -> Tensor:
        """Posterior features ``(B, F)`` of observations ``(B, *obs_shape)`` from a fresh state."""
        items = inputs.as_obs_dict(obs, self.modalities, 1)
        b = next(iter(items.values())).shape[0]
        dev = self._param_device()
        embed = self.encoder({k: v.to(dev) for k, v in items.items()})
        state = self.dynamics.initial(b, dev)
        zeros = torch.zeros(b, 1, self.config.action_dim, device=dev)
        first = torch.ones(b, 1, dtype=torch.bool, device=dev)
        _, carry = self.dynamics.observe(embed[:, None], zeros, first, state, sample=False)
        return features(carry)

    # ------------------------------------------------------------------ acting
    def plan_act(
        self,
        carry: State,
        state: State | None,
        first: Tensor,
        *,
        eval_mode: bool,
        goal: Any = None,
    ) -> tuple[Tensor, State]:
        """Act by planning from the filtered ``carry``; the state keeps the plan as warm start.

        Args:
            carry: the posterior state after the current observation.
            state: the previous agent state (its ``plan_mean (B, H, A)`` is the warm start).
            first: ``(B,)`` bool, environments that were just reset (no warm start).
            eval_mode: no exploration noise.
            goal: goal observations ``(B, *obs_shape)`` for a planner with ``objective: goal``.
        """
        z = features(carry)
        prev = None if state is None else state.get("plan_mean")
        if prev is not None:
            prev = prev * (~first).to(prev.dtype)[:, None, None]
        goal_z = None if goal is None else self.plan_encode(goal, None)
        result = self.planner.plan(
            self, z, prev_mean=prev, discount=self.config.discount, eval_mode=eval_mode, goal=goal_z
        )
        carry["action"] = self._model_action(result.action)
        carry["plan_mean"] = result.mean
        return carry["action"], carry
