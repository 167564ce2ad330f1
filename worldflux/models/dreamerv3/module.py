"""DreamerV3: the world model and its actor-critic as one Lightning module.

Paper: D. Hafner, J. Pasukonis, J. Ba, T. Lillicrap, "Mastering diverse control tasks through
world models", Nature 640 (2025), arXiv:2301.04104v2. Reference implementation:
github.com/danijar/dreamerv3 at commit ``e3f0224`` (``dreamerv3/agent.py``, ``dreamerv3/rssm.py``,
``embodied/jax/{nets,heads,outs,opt,utils}.py``); architecture, initialisation, losses and
optimiser follow it parameter for parameter. The agent state of :meth:`DreamerV3.act` is
``{"deter": (B, D), "stoch": (B, S, K), "action": (B, A)}`` (``action`` is the previous action).

Axis legend: ``B`` batch, ``T`` time, ``H`` horizon, ``A`` action size, ``D`` deter size,
``S`` stochastic latents, ``K`` classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from worldflux.core.model import OPERATIONS, LossOutput, WorldModel
from worldflux.errors import ShapeError
from worldflux.models.dreamerv3 import inputs
from worldflux.models.dreamerv3.config import DreamerV3Config
from worldflux.models.dreamerv3.losses import (
    actor_critic_losses,
    features,
    total_loss,
    world_model_losses,
)
from worldflux.models.dreamerv3.planning import DreamerV3Planning
from worldflux.nn.ema import ema_update, frozen_copy
from worldflux.nn.scale import PercentileScale

State = dict[str, Tensor]


class DreamerV3(DreamerV3Planning, WorldModel):
    """DreamerV3 (world model, actor and critic) built from a :class:`DreamerV3Config`."""

    config: DreamerV3Config
    slow_count: Tensor
    config_class = DreamerV3Config
    capabilities = frozenset(OPERATIONS)
    fsdp_wrap_units = ("SimpleEncoder",)  # the decoder and RSSM are called through methods
    component_slots = (
        "encoder",
        "dynamics",
        "decoder",
        "reward_head",
        "continue_head",
        "policy",
        "value",
    )

    def __init__(self, config: Mapping[str, Any] | DreamerV3Config) -> None:
        super().__init__(config)
        c: DreamerV3Config = self.config  # type: ignore[assignment]
        self.modalities = c.modalities()
        self.encoder = self.build_component(
            "encoder", modalities=self.modalities, depth=c.depth, units=c.units
        )
        self.dynamics = self.build_component(
            "dynamics",
            deter=c.deter_dim,
            hidden=c.hidden_dim,
            stoch=c.stoch_dim,
            classes=c.classes,
            embed_dim=self.encoder.out_dim,
            action_dim=c.action_dim,
        )
        flat_stoch = c.stoch_dim * c.classes
        feat = c.deter_dim + flat_stoch
        self.decoder = self.build_component(
            "decoder",
            modalities=self.modalities,
            deter=c.deter_dim,
            stoch=flat_stoch,
            depth=c.depth,
            units=c.units,
        )
        self.reward_head = self.build_component("reward_head", in_dim=feat, units=c.units)
        self.continue_head = self.build_component("continue_head", in_dim=feat, units=c.units)
        self.policy = self.build_component(
            "policy",
            in_dim=feat,
            units=c.units,
            action_dim=c.action_dim,
            action_kind=c.action_kind,
        )
        self.value = self.build_component("value", in_dim=feat, units=c.units)
        self._build_slow_value()
        self.retnorm = PercentileScale(
            c.retnorm_rate,
            limit=c.retnorm_limit,
            low=c.retnorm_perclo,
            high=c.retnorm_perchi,
            smooth="bounds",
        )
        self.register_buffer("slow_count", torch.zeros((), dtype=torch.long))
        self.planner = self.build_planner()  # None: act with the actor

    def _build_slow_value(self) -> None:
        """The slow critic: an EMA copy of ``value`` that is never trained directly."""
        # The critic has no dropout or running statistics, so its copy may follow the model's
        # train/eval mode (Lightning warns about modules left in eval mode).
        self.slow_value = frozen_copy(self.value).train(self.value.training)

    def replace_component(self, slot: str, component: torch.nn.Module) -> None:
        super().replace_component(slot, component)
        if slot == "value":
            self._build_slow_value()

    # ------------------------------------------------------------------ the contract
    def initial_state(self, batch_size: int) -> State:
        """Zero ``deter (B, D)``, ``stoch (B, S, K)`` and previous ``action (B, A)``."""
        state = self.dynamics.initial(batch_size, self._param_device())
        state["action"] = torch.zeros(
            batch_size, self.config.action_dim, device=self._param_device()
        )
        return state

    def encode(self, obs: Tensor | Mapping[str, Tensor]) -> Tensor:
        """Embed observations ``(B, *shape)`` to ``(B, E)`` or ``(B, T, *shape)`` to ``(B, T, E)``."""
        lead = self._lead_axes(obs)
        items = inputs.as_obs_dict(obs, self.modalities, lead, "(B, T)" if lead == 2 else "(B)")
        shape = next(iter(items.values())).shape[:lead]
        flat = {k: v.to(self._param_device()).flatten(0, lead - 1) for k, v in items.items()}
        return self.encoder(flat).view(*shape, -1)

    def observe(
        self, obs: Any, action: Tensor, first: Tensor, state: State | None = None
    ) -> tuple[State, State]:
        """Posterior states over ``(B, T)`` sequences and the carry after the last step.

        Returns ``(states, last)``: ``states`` has ``deter (B, T, D)``, ``stoch (B, T, S, K)`` and
        posterior ``logit (B, T, S, K)``; ``last`` is an agent state (with ``action``).
        """
        embed = self.encode(obs)
        if embed.dim() != 3:
            raise ShapeError("observe takes sequences: observations of shape (B, T, ...)")
        b, t = embed.shape[:2]
        action = inputs.check_actions(
            action.to(embed.device), self.config.action_kind, self.config.action_dim, (b, t)
        )
        first = inputs.check_flags(first.to(embed.device), "first", (b, t), as_bool=True)
        if state is not None:
            inputs.check_state(state, self._state_shapes(), (b,), optional=("action",))
        state = state or self.initial_state(b)
        states, last = self.dynamics.observe(embed, action, first, state)
        last["action"] = action[:, -1]
        return states, last

    def transition(self, state: State, action: Tensor) -> State:
        """One prior step from ``state`` under ``action (B, A)``."""
        inputs.check_state(state, self._state_shapes(), optional=("action",))
        b = state["deter"].shape[0]
        action = inputs.check_actions(
            action.to(state["deter"].device),
            self.config.action_kind,
            self.config.action_dim,
            (b,),
            "(B)",
        )
        nxt = self.dynamics.img_step(state, action)
        nxt["action"] = action
        return nxt

    def rollout(self, state: State, actions: Tensor) -> State:
        """Imagine ``(B, H, ...)`` states from ``state`` under ``actions (B, H, A)``."""
        inputs.check_state(state, self._state_shapes(), optional=("action",))
        b = state["deter"].shape[0]
        if not isinstance(actions, Tensor) or actions.dim() != 3 or actions.shape[1] < 1:
            raise ShapeError(
                f"rollout actions must have shape (B, H, A) with H >= 1, got "
                f"{getattr(actions, 'shape', type(actions).__name__)}"
            )
        actions = inputs.check_actions(
            actions.to(state["deter"].device),
            self.config.action_kind,
            self.config.action_dim,
            (b, actions.shape[1]),
            "(B, H)",
        )
        states, acts = self.dynamics.imagine(state, actions, actions.shape[1])
        states["action"] = acts
        return states

    def decode(self, state: State) -> dict[str, Any]:
        """``obs`` reconstructions (images in ``[0, 1]``), ``reward`` and ``continue`` probability."""
        shapes = self._state_shapes()
        lead = state["deter"].dim() - 1 if isinstance(state, Mapping) and "deter" in state else 1
        names = "(B, T)" if lead == 2 else "(B)"
        inputs.check_state(state, shapes, lead_names=names, optional=("action",))
        deter, stoch = state["deter"], state["stoch"]
        lead = deter.shape[:-1]
        feat = features(state)
        flat_stoch = stoch.reshape(-1, stoch.shape[-2] * stoch.shape[-1])
        recons = self.decoder(deter.reshape(-1, deter.shape[-1]), flat_stoch)
        obs = {
            k: self.decoder.obs_prediction(k, v).view(*lead, *v.shape[1:])
            for k, v in recons.items()
        }
        return {
            "obs": obs if self.config.multimodal else next(iter(obs.values())),
            "reward": self.reward_head.pred(self.reward_head(feat)),
            "continue": self.continue_head.prob(self.continue_head(feat)),
        }

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """World-model, actor and critic losses on a batch of sequences (``core.model`` format)."""
        obs, action, reward, first, terminal, last = self._unpack(batch)
        if batch.get("state") is not None:
            inputs.check_state(batch["state"], self._state_shapes(), first.shape[:1])
        state = batch.get("state") or self.dynamics.initial(first.shape[0], first.device)
        losses, post, feat, metrics = world_model_losses(
            self, obs, action, reward, first, terminal, state
        )
        ac_losses, ac_metrics = actor_critic_losses(
            self, post, feat, reward, last, terminal, update=self.training
        )
        losses.update(ac_losses)
        metrics.update(ac_metrics)
        total, weighted = total_loss(self, losses)
        return LossOutput(total=total, components=weighted, metrics=metrics)

    @torch.no_grad()
    def act(  # type: ignore[override]  # adds the keyword-only acting options
        self,
        obs: Any,
        state: State | None = None,
        *,
        first: Tensor | None = None,
        eval_mode: bool = False,
        task: Any = None,
        goal: Any = None,
    ) -> tuple[Tensor, State]:
        """Actions ``(B, A)`` for a batch of environments and the next agent state.

        Args:
            obs: observations ``(B, *obs_shape)`` or ``{name: (B, *shape)}``; images may be uint8.
            state: the previous agent state (``None``: every environment starts fresh).
            first: ``(B,)`` bool, environments that were just reset (their state is cleared).
            eval_mode: take the policy's mode instead of sampling.
            task: unused (single-task family).
            goal: goal observations for a planner with ``objective: goal`` (``config.planner``).

        Returns:
            ``(action, state)``: one-hot rows for discrete actions, values in ``[-1, 1]`` for
            continuous ones.
        """
        items = inputs.as_obs_dict(obs, self.modalities, 1)
        b = next(iter(items.values())).shape[0]
        dev = self._param_device()
        if state is None:
            state = self.initial_state(b)
            first = torch.ones(b, dtype=torch.bool, device=dev) if first is None else first
        else:
            shapes = {**self._state_shapes(), "action": (self.config.action_dim,)}
            inputs.check_state(state, shapes, (b,))
            if first is None:
                first = torch.zeros(b, dtype=torch.bool, device=dev)
        first = inputs.check_flags(first.to(dev).view(-1), "first", (b,), as_bool=True)
        embed = self.encoder({k: v.to(dev) for k, v in items.items()})
        _, carry = self.dynamics.observe(
            embed[:, None], state["action"][:, None], first[:, None], state
        )
        if self.planner is not None:  # acting by latent planning (models/dreamerv3/planning.py)
            return self.plan_act(carry, state, first, eval_mode=eval_mode, goal=goal)
        dist = self.policy(features(carry))
        action = dist.mode() if eval_mode else dist.sample()
        if self.config.action_kind == "continuous":
            action = action.clamp(-1.0, 1.0)
        carry["action"] = action
        return action, carry

    # ------------------------------------------------------------------ training
    # One phase ("agent", conf/model/dreamerv3/base.yaml): world model, actor and critic trained
    # together by one LaProp optimiser whose adaptive gradient clipping replaces norm clipping.
    def phase_loss(
        self, name: str, batch: Mapping[str, Any], outputs: Mapping[str, LossOutput]
    ) -> LossOutput:
        """The ``agent`` phase: :meth:`loss` on the batch."""
        return self.loss(batch)

    def after_phase(self, name: str) -> None:
        """The slow critic follows the critic after each optimiser step."""
        self.update_slow_value()

    def update_slow_value(self) -> None:
        """EMA step of the slow critic (rate ``slow_rate`` every ``slow_every`` updates)."""
        if int(self.slow_count) % self.config.slow_every == 0:
            ema_update(self.slow_value, self.value, self.config.slow_rate)
        self.slow_count += 1

    def grad_norm(self) -> Tensor:
        """Global L2 norm of the current gradients."""
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if not grads:
            return torch.zeros(())
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))

    def train_update(
        self, batch: Mapping[str, Any], optimizer: torch.optim.Optimizer | None = None
    ) -> LossOutput:
        """One full update outside Lightning (the generic phase step); returns its loss.

        ``optimizer`` is the phase's optimiser from :meth:`configure_optimizers` (a one-element
        list is accepted too); ``metrics["grad/agent_norm"]`` holds the gradient norm.
        """
        opts = self.configure_optimizers() if optimizer is None else optimizer
        opts = opts if isinstance(opts, (list, tuple)) else [opts]
        metrics, outputs = self.run_update({"agent": batch}, opts)
        out = outputs["agent"]
        out.metrics["grad/agent_norm"] = metrics["grad/agent_norm"]
        return out

    # ------------------------------------------------------------------ helpers
    def _param_device(self) -> torch.device:
        return self.dynamics.priorlogit.weight.device

    def _state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample shapes of the dynamics state (``deter (D,)``, ``stoch (S, K)``)."""
        return {k: tuple(v.shape[1:]) for k, v in self.dynamics.initial(1).items()}

    def _lead_axes(self, obs: Any) -> int:
        name, spec = next(iter(self.modalities.items()))
        value = obs[name] if isinstance(obs, Mapping) and name in obs else obs
        if not isinstance(value, Tensor):
            return 1
        return max(1, value.dim() - len(spec["shape"]))

    def _batch_size(self, batch: Mapping[str, Any]) -> int:
        return int(batch["reward"].shape[0]) if "reward" in batch else 1

    def _unpack(self, batch: Mapping[str, Any]) -> tuple:
        c = self.config
        obs, action, reward, first, terminal = inputs.unpack_sequences(
            batch, self.modalities, c.action_kind, c.action_dim, self._param_device(),
            "DreamerV3", c.batch_length,
        )  # fmt: skip
        if "last" in batch:
            last = batch["last"].to(first.device)
            last = inputs.check_flags(last, "last", tuple(first.shape), as_bool=True)
        else:
            last = inputs.episode_last(first, terminal)
        return obs, action, reward, first, terminal, last
