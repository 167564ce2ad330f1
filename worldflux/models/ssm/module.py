"""R2I (Recall to Imagine): DreamerV3 with an S5 state-space core, as one Lightning module.

Paper: M. R. Samsami, A. Zholus, J. Rajendran, S. Chandar, "Mastering Memory Tasks with World
Models", ICLR 2024. Reference implementation: github.com/chandar-lab/Recall2Imagine at commit
``6e317e7`` (``recall2imagine/agent.py``, ``ssm_nets.py``, ``ssm/mimo.py``, ``ssm/common.py``,
``nets.py``, ``configs.yaml``); architecture, parameter counts, initialisation, losses and the
three optimisers follow it. Sequences are filtered with one parallel scan over time
(:mod:`.s5`); imagination steps the SSM one step at a time. The agent state of :meth:`SSM.act`
is ``{"deter": (B, D), "stoch": (B, S, K), "hidden": (B, L, P, 2), "action": (B, A)}``.

Axis legend: ``B`` batch, ``T`` time, ``H`` horizon, ``A`` action size, ``D`` deter size,
``S`` stochastic latents, ``K`` classes, ``L`` SSM layers, ``P`` SSM state.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from worldflux.core.instantiate import instantiate
from worldflux.core.model import LossOutput, WorldModel
from worldflux.core.phases import Phase
from worldflux.errors import ShapeError
from worldflux.models.dreamerv3 import inputs
from worldflux.models.ssm import losses
from worldflux.models.ssm.config import SSMConfig
from worldflux.models.ssm.dynamics import feature_size, features
from worldflux.nn.ema import ema_update

State = dict[str, Tensor]
#: Parameter names of the S5 layers that the reference optimises without weight decay.
SSM_PARAMS = ("Lambda_re", "Lambda_im", "B", "C", "D", "log_step")


class SSM(WorldModel):
    """R2I (world model, actor and critic) built from a :class:`SSMConfig`."""

    config: SSMConfig
    slow_count: Tensor
    config_class = SSMConfig
    capabilities = frozenset(
        {"initial_state", "encode", "observe", "transition", "decode", "rollout", "loss", "act"}
    )
    fsdp_wrap_units = ("MultiEncoder",)  # the decoder and S5 stack are called through methods
    component_slots = (
        "encoder",
        "dynamics",
        "decoder",
        "reward_head",
        "continue_head",
        "policy",
        "value",
    )

    def __init__(self, config: Mapping[str, Any] | SSMConfig) -> None:
        super().__init__(config)
        c: SSMConfig = self.config  # type: ignore[assignment]
        self.modalities = c.modalities()
        self.encoder = self.build_component(
            "encoder",
            modalities=self.modalities,
            depth=c.depth,
            mlp_units=c.mlp_units,
            mlp_layers=c.mlp_layers,
        )
        self.dynamics = self.build_component(
            "dynamics",
            deter=c.deter_dim,
            units=c.units,
            ssm_state=c.ssm_state,
            ssm_layers=c.ssm_layers,
            stoch=c.stoch_dim,
            classes=c.classes,
            embed_dim=self.encoder.out_dim,
            action_dim=c.action_dim,
        )
        wm_feat = c.deter_dim + c.stoch_dim * c.classes
        ac_feat = feature_size(
            c.deter_dim, c.stoch_dim, c.classes, c.ssm_layers, c.ssm_state, c.ac_inputs
        )
        self.decoder = self.build_component(
            "decoder",
            modalities=self.modalities,
            in_dim=wm_feat,
            depth=c.depth,
            mlp_units=c.mlp_units,
            mlp_layers=c.mlp_layers,
        )
        heads = {"units": c.head_units, "layers": c.head_layers}
        self.reward_head = self.build_component("reward_head", in_dim=wm_feat, **heads)
        self.continue_head = self.build_component("continue_head", in_dim=wm_feat, **heads)
        self.policy = self.build_component(
            "policy",
            in_dim=ac_feat,
            action_dim=c.action_dim,
            action_kind=c.action_kind,
            **heads,
        )
        self.value = self.build_component("value", in_dim=ac_feat, **heads)
        self.slow_value = copy.deepcopy(self.value).requires_grad_(False)
        self.retnorm = losses.PercentileNorm(
            c.retnorm_decay, c.retnorm_max, c.retnorm_perclo, c.retnorm_perchi
        )
        self.register_buffer("slow_count", torch.zeros((), dtype=torch.long))

    def replace_component(self, slot: str, component: nn.Module) -> None:
        super().replace_component(slot, component)
        if slot == "value":
            self.slow_value = copy.deepcopy(self.value).requires_grad_(False)

    # ------------------------------------------------------------------ the contract
    def initial_state(self, batch_size: int) -> State:
        """The learned initial ``deter``, ``stoch``, ``hidden`` and a zero previous ``action``."""
        state = dict(self.dynamics.initial(batch_size))
        state["action"] = torch.zeros(
            batch_size, self.config.action_dim, device=self._param_device()
        )
        return state

    def encode(self, obs: Tensor | Mapping[str, Tensor]) -> Tensor:
        """Embed ``(B, *shape)`` to ``(B, E)`` or ``(B, T, *shape)`` to ``(B, T, E)``."""
        lead = self._lead_axes(obs)
        items = inputs.as_obs_dict(obs, self.modalities, lead, "(B, T)" if lead == 2 else "(B)")
        shape = next(iter(items.values())).shape[:lead]
        flat = {k: v.to(self._param_device()).flatten(0, lead - 1) for k, v in items.items()}
        return self.encoder(flat).view(*shape, -1)

    def observe(
        self, obs: Any, action: Tensor, first: Tensor, state: State | None = None
    ) -> tuple[State, State]:
        """Posterior states over ``(B, T)`` sequences (one parallel scan) and the last carry."""
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
        """One prior step (the SSM's one-step recurrence) under ``action (B, A)``."""
        inputs.check_state(state, self._state_shapes(), optional=("action",))
        b = state["deter"].shape[0]
        action = inputs.check_actions(
            action.to(self._param_device()),
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
        if not isinstance(actions, Tensor) or actions.dim() != 3 or actions.shape[1] < 1:
            raise ShapeError(
                "rollout actions must have shape (B, H, A) with H >= 1, got "
                f"{getattr(actions, 'shape', type(actions).__name__)}"
            )
        steps = [state]
        for i in range(actions.shape[1]):
            steps.append(self.transition(steps[-1], actions[:, i]))
        return {k: torch.stack([s[k] for s in steps[1:]], 1) for k in steps[1]}

    def decode(self, state: State) -> dict[str, Any]:
        """``obs`` predictions (images in ``[0, 1]``), ``reward`` and ``continue`` probability."""
        lead = state["deter"].dim() - 1 if isinstance(state, Mapping) and "deter" in state else 1
        inputs.check_state(
            state,
            self._state_shapes(),
            lead_names="(B, T)" if lead == 2 else "(B)",
            optional=("action", "hidden"),
        )
        feat = features(state, ("deter", "stoch"))
        preds = self.decoder(feat.reshape(-1, feat.shape[-1]))
        shape = feat.shape[:-1]
        obs = {
            k: self.decoder.obs_prediction(k, v).view(*shape, *v.shape[1:])
            for k, v in preds.items()
        }
        return {
            "obs": obs if self.config.multimodal else next(iter(obs.values())),
            "reward": self.reward_head.mean(self.reward_head(feat)),
            "continue": torch.sigmoid(self.continue_head(feat)),
        }

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """World-model, actor and critic losses on one batch (``total`` is their sum)."""
        outs: dict[str, LossOutput] = {}
        for name in ("model", "actor", "critic"):
            outs[name] = self.phase_loss(name, batch, outs)
        comps = {k: v for o in outs.values() for k, v in o.components.items()}
        mets = {k: v for o in outs.values() for k, v in o.metrics.items()}
        total = outs["model"].total + outs["actor"].total + outs["critic"].total
        return LossOutput(total=total, components=comps, metrics=mets)

    @torch.no_grad()
    def act(  # type: ignore[override]  # adds the keyword-only acting options
        self,
        obs: Any,
        state: State | None = None,
        *,
        first: Tensor | None = None,
        eval_mode: bool = False,
        task: Any = None,
    ) -> tuple[Tensor, State]:
        """Actions ``(B, A)`` and the next agent state (one SSM step per call).

        Args:
            obs: observations ``(B, *obs_shape)`` or ``{name: (B, *shape)}``.
            state: the previous agent state (``None``: every environment starts fresh).
            first: ``(B,)`` bool, environments that were just reset.
            eval_mode: take the policy's mode instead of sampling.
            task: unused (single-task family).
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
            first = torch.zeros(b, dtype=torch.bool, device=dev) if first is None else first
        first = inputs.check_flags(first.to(dev).view(-1), "first", (b,), as_bool=True)
        embed = self.encoder({k: v.to(dev) for k, v in items.items()})
        # one-step observe: a reset replaces the carry by the learned initial state
        zero = self.initial_state(b)
        keep = (~first).float()
        carry = {
            k: v * keep.view(b, *[1] * (v.dim() - 1))
            + zero[k] * (1 - keep).view(b, *[1] * (v.dim() - 1))
            for k, v in state.items()
        }
        prior = self.dynamics.img_step(carry, carry["action"])
        logit = self.dynamics.post_logit(embed)
        stoch = self._sample(logit, eval_mode)
        latent = {"deter": prior["deter"], "stoch": stoch, "hidden": prior["hidden"]}
        dist = self.policy(features(latent, self.config.ac_inputs))
        action = dist.mode() if eval_mode else dist.sample()
        if self.config.action_kind == "continuous":
            action = action.clamp(-1.0, 1.0)
        latent["action"] = action
        return action, latent

    def _sample(self, logit: Tensor, mode: bool) -> Tensor:
        from worldflux.nn.distributions import sample_onehot

        return sample_onehot(self.dynamics.logprobs(logit), mode=mode)

    # ------------------------------------------------------------------ training
    # Three phases (conf/model/ssm/base.yaml), one optimiser each as in the reference: the world
    # model, then the actor on fresh imagination from its posteriors, then the critic on the
    # actor's trajectories. The slow critic follows the critic after its step.
    def phase_loss(
        self, name: str, batch: Mapping[str, Any], outputs: Mapping[str, LossOutput]
    ) -> LossOutput:
        """The ``model``, ``actor`` or ``critic`` loss."""
        if name == "model":
            obs, action, reward, first, terminal = self._unpack(batch)
            state = batch.get("state")
            if state is not None:
                inputs.check_state(state, self._state_shapes(), first.shape[:1])
            state = state or self.dynamics.initial(first.shape[0])
            total, comps, extra = losses.world_model_loss(
                self, obs, action, reward, first, terminal, state
            )
            return LossOutput(total, comps, extra["metrics"], outputs=extra["outputs"])
        if name == "actor":
            total, comps, extra = losses.actor_loss(
                self, outputs["model"].outputs, update=self.training
            )
            return LossOutput(total, comps, extra.pop("metrics"), outputs=extra)
        if name == "critic":
            total, comps = losses.critic_loss(self, outputs["actor"].outputs)
            return LossOutput(total, comps)
        raise ShapeError(f"SSM has phases model, actor and critic, not {name!r}")

    def after_phase(self, name: str) -> None:
        """The slow critic follows the critic after each critic step."""
        if name != "critic":
            return
        if int(self.slow_count) % self.config.slow_every == 0:
            ema_update(self.slow_value, self.value, self.config.slow_fraction)
        self.slow_count += 1

    def build_phase_optimizer(self, phase: Phase) -> torch.optim.Optimizer:
        """The reference's world-model groups: S5 parameters with ``ssm_lr`` and no weight
        decay, dense and conv kernels with ``model_wd``, everything else without decay."""
        if phase.name != "model":
            return super().build_phase_optimizer(phase)
        c = self.config
        ssm, kernels, rest = [], [], []
        for module in self.phase_modules(phase):
            for sub in module.modules():
                for pname, p in sub.named_parameters(recurse=False):
                    if not p.requires_grad:
                        continue
                    if pname in SSM_PARAMS and sub.__class__.__name__ == "S5Layer":
                        ssm.append(p)
                    elif pname == "weight" and isinstance(
                        sub, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
                    ):
                        kernels.append(p)
                    else:
                        rest.append(p)
        groups = [
            {"params": kernels, "weight_decay": c.model_wd},
            {"params": rest, "weight_decay": 0.0},
            {"params": ssm, "weight_decay": 0.0, "lr": c.ssm_lr},
        ]
        factory = instantiate({**dict(phase.optimizer), "_partial_": True})
        return factory([g for g in groups if g["params"]])

    # ------------------------------------------------------------------ helpers
    def _param_device(self) -> torch.device:
        return self.dynamics.initial_deter.device

    def _state_shapes(self) -> dict[str, tuple[int, ...]]:
        c = self.config
        return {
            "deter": (c.deter_dim,),
            "stoch": (c.stoch_dim, c.classes),
            "hidden": (c.ssm_layers, c.ssm_state, 2),
        }

    def _lead_axes(self, obs: Any) -> int:
        name, spec = next(iter(self.modalities.items()))
        value = obs[name] if isinstance(obs, Mapping) and name in obs else obs
        if not isinstance(value, Tensor):
            return 1
        return max(1, value.dim() - len(spec["shape"]))

    def _unpack(self, batch: Mapping[str, Any]) -> tuple:
        c = self.config
        obs, action, reward, first, terminal = inputs.unpack_sequences(
            batch, self.modalities, c.action_kind, c.action_dim, self._param_device(),
            "R2I", c.batch_length,
        )  # fmt: skip
        return obs, action, reward, first, terminal
