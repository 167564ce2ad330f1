"""Diffusion (DIAMOND): a diffusion world model of pixels, with an agent trained in imagination.

Paper: Alonso, Jelley, Micheli, Kanervisto, Storkey, Pearce & Fleuret, "Diffusion for World
Modeling: Visual Details Matter in Atari", NeurIPS 2024 (arXiv:2405.12399). Reference
implementation: eloialonso/diamond @ 5bcd159 (branch main): ``src/models/``,
``config/agent/default.yaml``, ``config/trainer.yaml``. Facts only; the code is ours.

Three parts, three phases (``conf/model/diffusion/base.yaml``): the EDM denoiser predicts the
next frame from the last ``n`` frames and actions; the reward/termination model classifies each
transition; the actor-critic is trained on 15-step imagined rollouts (Euler sampler, 3 steps)
with lambda-returns. Frames are ``[-1, 1]`` inside the model.

Axis legend: ``B`` batch, ``T`` time, ``N`` conditioning frames, ``H`` horizon, ``C, S`` image
channels and side, ``A`` actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Categorical

from worldflux.core.model import LossOutput, WorldModel
from worldflux.core.protocols import Rollout, Sample
from worldflux.errors import ConfigError, ShapeError
from worldflux.models.diffusion import frames as fr
from worldflux.models.diffusion.agent import lambda_returns
from worldflux.models.diffusion.config import DiffusionConfig
from worldflux.models.diffusion.denoiser import SamplerSettings, sample_next
from worldflux.models.diffusion.weights import ReleasedWeights

State = dict[str, Tensor]


class Diffusion(ReleasedWeights, WorldModel):
    """DIAMOND: ``denoiser``, ``rew_end_model`` and ``actor_critic`` (component slots).

    A world-model state is the conditioning window ``{"frames": (B, N, C, S, S) in [-1, 1],
    "actions": (B, N) long}``, ``actions[:, k]`` being the action taken at ``frames[:, k]`` (the
    last one is filled in by the next step).
    """

    config_class = DiffusionConfig
    capabilities = frozenset(
        {"initial_state", "observe", "rollout", "decode", "loss", "act", "sample"}
    )
    component_slots = ("denoiser", "rew_end_model", "actor_critic")
    fsdp_wrap_units = ("ResBlocks",)  # the U-Net stages
    config: DiffusionConfig

    def __init__(self, config: Mapping[str, Any] | DiffusionConfig) -> None:
        super().__init__(config)
        c = self.config
        if len(c.obs_shape) != 3:
            raise ConfigError(f"obs_shape must be an image (C, S, S), got {c.obs_shape}")
        ch, side = c.obs_shape[0], c.obs_shape[-1]
        self.denoiser = self.build_component(
            "denoiser",
            img_channels=ch,
            num_actions=c.action_dim,
            num_steps_conditioning=c.num_steps_conditioning,
            sigma_data=c.sigma_data,
            sigma_offset_noise=c.sigma_offset_noise,
        )
        sizes = {"img_channels": ch, "img_size": side, "num_actions": c.action_dim}
        self.rew_end_model = self.build_component("rew_end_model", **sizes)
        self.actor_critic = self.build_component("actor_critic", **sizes)

    # ------------------------------------------------------------------ weight-decay groups
    @property
    def denoiser_embeddings(self) -> nn.Module:
        """The denoiser's action embedding (no weight decay, as the reference groups it)."""
        return self.denoiser.inner_model.act_emb

    @property
    def rew_end_embeddings(self) -> nn.Module:
        """The reward/termination model's action embedding (no weight decay)."""
        return self.rew_end_model.act_emb

    # ------------------------------------------------------------------ helpers
    def sampler_settings(self, num_steps: int | None = None) -> SamplerSettings:
        """The config's sampler, optionally with another number of steps."""
        c = self.config
        steps = c.num_steps_denoising if num_steps is None else num_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"num_steps (sampler steps) must be an integer >= 1, got {steps!r}")
        return SamplerSettings(
            steps,
            c.sigma_min,
            c.sigma_max,
            c.rho,
            c.sampler_order,
            c.s_churn,
            c.s_tmin,
            c.s_tmax,
            c.s_noise,
        )

    def _frames(self, obs: Any, lead: int) -> Tensor:
        return fr.to_model_frames(obs, self.config.obs_shape, lead, self.denoiser_device)

    @property
    def denoiser_device(self) -> torch.device:
        return self.denoiser.inner_model.conv_in.weight.device

    def _sample_sigma(self, b: int, device: torch.device) -> Tensor:
        c = self.config
        s = torch.randn(b, device=device) * c.train_sigma_scale + c.train_sigma_loc
        return s.exp().clip(c.train_sigma_min, c.train_sigma_max)

    # ------------------------------------------------------------------ losses
    def denoiser_loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """EDM loss on every frame after the first ``n`` (later ones from denoised predictions)."""
        n = self.config.num_steps_conditioning
        x = self._frames(batch["obs"], 2)
        if x.shape[1] < n + 1:
            raise ShapeError(
                f"the denoiser phase needs >= {n + 1} frames per sequence, got {x.shape[1]}"
            )
        act = fr.action_indices(batch["action"], self.config.action_dim, x.shape[:2]).to(x.device)
        episode = fr.episode_ids(batch, x.shape[:2], x.device)
        all_obs, loss = x.clone(), x.new_zeros(())
        steps = x.shape[1] - n
        for i in range(steps):
            obs, a = fr.window(all_obs, act, episode, i, n)
            target_frame = all_obs[:, n + i]
            b = obs.shape[0]
            sigma = self._sample_sigma(b, x.device)
            noisy = self.denoiser.apply_noise(target_frame, sigma)
            cs = self.denoiser.conditioners(sigma)
            out = self.denoiser(noisy, obs.flatten(1, 2), a, cs)
            target = (target_frame - cs.c_skip * noisy) / cs.c_out
            loss = loss + F.mse_loss(out, target)
            all_obs[:, n + i] = self.denoiser.wrap(noisy, out.detach(), cs)
        loss = loss / steps
        return LossOutput(loss, {"denoising": loss})

    def rew_end_loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """Cross-entropies of reward sign and termination on every within-episode transition."""
        x = self._frames(batch["obs"], 2)
        if x.shape[1] < 2:
            raise ShapeError(f"the rew_end_model phase needs >= 2 frames, got {x.shape[1]}")
        b, t = x.shape[:2]
        act = fr.action_indices(batch["action"], self.config.action_dim, (b, t)).to(x.device)
        first = torch.as_tensor(batch["first"], device=x.device).bool()
        reward = torch.as_tensor(batch["reward"], device=x.device).float()[:, 1:]
        end = torch.as_tensor(batch["terminal"], device=x.device).long()[:, 1:]
        # the transition obs[t] -> obs[t + 1] is made by action[t + 1] (it led to obs[t + 1])
        logits_rew, logits_end, _ = self.rew_end_model(
            x[:, :-1], act[:, 1:], x[:, 1:], first=first[:, :-1]
        )
        valid = ~first[:, 1:]  # a transition into a new episode's first frame is not one
        if not bool(valid.any()):
            zero = logits_rew.sum() * 0
            return LossOutput(zero, {"reward": zero, "end": zero})
        loss_rew = F.cross_entropy(logits_rew[valid], reward[valid].sign().long().add(1))
        loss_end = F.cross_entropy(logits_end[valid], end[valid])
        return LossOutput(loss_rew + loss_end, {"reward": loss_rew, "end": loss_end})

    def actor_critic_loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """Advantage actor-critic on a ``horizon``-step rollout imagined from the batch's last
        ``n`` frames (reward and termination sampled from the reward/termination model)."""
        c = self.config
        state = self.context_state(batch)
        ac = self.actor_critic
        b = state["frames"].shape[0]
        hx = state["frames"].new_zeros(b, ac.lstm_dim)
        hc = (hx, hx.clone())
        with torch.no_grad():  # burn-in of the actor-critic on the context (no gradient)
            for k in range(c.num_steps_conditioning - 1):
                _, _, hc = ac(state["frames"][:, k], hc)
        rew_hc = self._burn_in_rew_end(state)
        obs = state["frames"][:, -1]
        logits, vals, acts, rews, ends = [], [], [], [], []
        alive = torch.ones(b, dtype=torch.bool, device=obs.device)
        alives = []
        settings = self.sampler_settings()
        for _ in range(c.horizon):
            logit, val, hc = ac(obs, hc)
            a = Categorical(logits=logit).sample()
            state, next_obs, rew, end, rew_hc = self._env_step(state, a, rew_hc, settings)
            logits.append(logit), vals.append(val), acts.append(a)
            rews.append(rew), ends.append(end), alives.append(alive)
            alive = alive & (end == 0)
            obs = next_obs
        with torch.no_grad():
            _, last_val, _ = ac(obs, hc)
        val = torch.stack(vals, 1)
        boot = torch.cat([val[:, 1:].detach(), last_val[:, None]], 1)
        end_t = torch.stack(ends, 1)
        trunc = torch.zeros_like(end_t)
        trunc[:, -1] = 1
        returns = lambda_returns(torch.stack(rews, 1), end_t, trunc, boot, c.gamma, c.lambda_)
        mask = torch.stack(alives, 1).float()
        dist = Categorical(logits=torch.stack(logits, 1))
        count = mask.sum().clamp(min=1)
        entropy = (dist.entropy() * mask).sum() / count
        adv = (returns - val).detach()
        loss_actions = (-dist.log_prob(torch.stack(acts, 1)) * adv * mask).sum() / count
        loss_values = c.weight_value_loss * (((val - returns) ** 2) * mask).sum() / count
        loss_entropy = -c.weight_entropy_loss * entropy
        total = loss_actions + loss_values + loss_entropy
        return LossOutput(
            total,
            {"actions": loss_actions, "values": loss_values, "entropy": loss_entropy},
            {"actor_critic/imagined_return": returns[:, 0].mean().detach()},
        )

    def phase_loss(
        self, name: str, batch: Mapping[str, Any], outputs: Mapping[str, LossOutput]
    ) -> LossOutput:
        """The loss of phase ``denoiser``, ``rew_end_model`` or ``actor_critic``."""
        losses = {
            "denoiser": self.denoiser_loss,
            "rew_end_model": self.rew_end_loss,
            "actor_critic": self.actor_critic_loss,
        }
        if name not in losses:
            raise ConfigError(f"diffusion has phases {sorted(losses)}, not {name!r}")
        return losses[name](batch)

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """The three phases' losses on one batch of sequences (``total`` is their sum)."""
        parts = [self.phase_loss(p.name, batch, {}) for p in self.schedule.phases]
        comps = {k: v for out in parts for k, v in out.components.items()}
        metrics = {k: v for out in parts for k, v in out.metrics.items()}
        return LossOutput(sum((o.total for o in parts[1:]), parts[0].total), comps, metrics)

    # ------------------------------------------------------------------ imagination
    def _burn_in_rew_end(self, state: State) -> tuple[Tensor, Tensor]:
        f, a = state["frames"], state["actions"]
        with torch.no_grad():
            if f.shape[1] < 2:
                z = f.new_zeros(1, f.shape[0], self.rew_end_model.lstm.hidden_size)
                return z, z.clone()
            _, _, hc = self.rew_end_model(f[:, :-1], a[:, :-1], f[:, 1:])
        return hc

    @torch.no_grad()
    def _env_step(
        self,
        state: State,
        action: Tensor,
        rew_hc: tuple[Tensor, Tensor],
        settings: SamplerSettings,
        generator: torch.Generator | None = None,
        sample_rew_end: bool = True,
    ) -> tuple[State, Tensor, Tensor, Tensor, tuple[Tensor, Tensor]]:
        """One step of the world-model environment: next frame, reward sign and termination."""
        frames, acts = state["frames"], state["actions"].clone()
        acts[:, -1] = action
        nxt, _ = sample_next(self.denoiser, frames.flatten(1, 2), acts, settings, generator)
        lr, le, rew_hc = self.rew_end_model(frames[:, -1:], acts[:, -1:], nxt[:, None], rew_hc)
        if sample_rew_end:
            rew = Categorical(logits=lr[:, 0]).sample().float() - 1.0
            end = Categorical(logits=le[:, 0]).sample()
        else:  # expectations (rollout): E[sign of reward], P(end)
            p = lr[:, 0].softmax(-1)
            rew, end = p[:, 2] - p[:, 0], le[:, 0].softmax(-1)[:, 1]
        new = {
            "frames": torch.cat([frames[:, 1:], nxt[:, None]], 1),
            "actions": torch.cat([acts[:, 1:], torch.zeros_like(acts[:, :1])], 1),
        }
        return new, nxt, rew, end, rew_hc

    def context_state(self, batch: Mapping[str, Any]) -> State:
        """The conditioning window at the last step of each sequence of ``batch``."""
        n = self.config.num_steps_conditioning
        x = self._frames(batch["obs"], 2)
        act = fr.action_indices(batch["action"], self.config.action_dim, x.shape[:2]).to(x.device)
        episode = fr.episode_ids(batch, x.shape[:2], x.device)
        x, act, episode = fr.left_pad(x, act, episode, n)
        frames, acts = fr.window(x, act, episode, x.shape[1] - n, n, include_target=True)
        acts = acts.clone()
        acts[:, -1] = 0
        return {"frames": frames, "actions": acts}

    # ------------------------------------------------------------------ contract
    def initial_state(self, batch_size: int) -> State:
        """An empty window: gray frames and action 0, as the reference pads an episode's start."""
        c = self.config
        frames = torch.zeros(
            batch_size, c.num_steps_conditioning, *c.obs_shape, device=self.denoiser_device
        )
        acts = torch.zeros(
            batch_size, c.num_steps_conditioning, dtype=torch.long, device=frames.device
        )
        return {"frames": frames, "actions": acts}

    def observe(
        self, obs: Any, action: Tensor, first: Tensor, state: State | None = None
    ) -> tuple[State, State]:
        """Slide the window over ``obs (B, T, C, S, S)``; returns ``(states (B, T, ...), last)``."""
        x = self._frames(obs, 2)
        b, t = x.shape[:2]
        act = fr.action_indices(action, self.config.action_dim, (b, t)).to(x.device)
        first = torch.as_tensor(first, device=x.device).bool().reshape(b, t)
        state = self.initial_state(b) if state is None else state
        empty = self.initial_state(b)
        states = []
        for i in range(t):
            keep = ~first[:, i]
            frames = torch.where(keep[:, None, None, None, None], state["frames"], empty["frames"])
            acts = torch.where(keep[:, None], state["actions"], empty["actions"])
            acts = acts.clone()
            acts[:, -1] = torch.where(keep, act[:, i], acts[:, -1])  # taken at the previous frame
            state = {
                "frames": torch.cat([frames[:, 1:], x[:, i, None]], 1),
                "actions": torch.cat([acts[:, 1:], torch.zeros_like(acts[:, :1])], 1),
            }
            states.append(state)
        stacked = {k: torch.stack([s[k] for s in states], 1) for k in state}
        return stacked, state

    def rollout(self, state: State, actions: Tensor) -> Rollout:
        """Imagine ``H`` frames under ``actions (B, H, A)`` (sampler of the config), with the
        expected reward sign and continue probability of each step."""
        b, h = actions.shape[:2]
        act = fr.action_indices(actions, self.config.action_dim, (b, h)).to(self.denoiser_device)
        rew_hc = self._burn_in_rew_end(state)
        settings = self.sampler_settings()
        states, rews, conts = [], [], []
        for i in range(h):
            state, _, rew, end, rew_hc = self._env_step(
                state, act[:, i], rew_hc, settings, sample_rew_end=False
            )
            states.append(state), rews.append(rew), conts.append(1 - end)
        stacked = {k: torch.stack([s[k] for s in states], 1) for k in state}
        return Rollout(stacked, torch.stack(rews, 1), torch.stack(conts, 1), actions)

    def decode(self, state: Any) -> dict[str, Tensor]:
        """``obs``: the newest frame of each window, in ``[0, 1]``."""
        states = state.states if isinstance(state, Rollout) else state
        return {"obs": fr.to_unit(states["frames"][..., -1, :, :, :])}

    def sample(
        self,
        context: Any,
        *,
        num_steps: int,
        generator: torch.Generator | None = None,
        actions: Tensor | None = None,
    ) -> Sample:
        """Generate frames after ``context`` with ``num_steps`` sampler steps.

        Args:
            context: frames ``(B, C, S, S)`` or ``(B, T, C, S, S)`` with ``1 <= T <= n`` (uint8
                or ``[0, 1]`` floats; fewer than ``n`` are padded as at an episode's start), or
                ``{"obs": ..., "action": (B, T, A)}`` with the actions that led to each frame.
            num_steps: denoising steps per frame (>= 1).
            generator: the random generator of the sampler's noise.
            actions: ``(B, H, A)`` actions taken from the last context frame on (default: one
                step of action 0); one frame is generated per action.

        Returns:
            :class:`Sample` with ``obs (B, H, C, S, S)`` in ``[0, 1]``.
        """
        settings = self.sampler_settings(num_steps)
        state = fr.state_from_context(self, context)
        b = state["frames"].shape[0]
        if actions is None:
            act = torch.zeros(b, 1, dtype=torch.long, device=state["frames"].device)
        else:
            act = fr.action_indices(actions, self.config.action_dim, (b, actions.shape[1])).to(
                state["frames"].device
            )
        out = []
        for i in range(act.shape[1]):
            acts = state["actions"].clone()
            acts[:, -1] = act[:, i]
            nxt, _ = sample_next(
                self.denoiser, state["frames"].flatten(1, 2), acts, settings, generator
            )
            state = {
                "frames": torch.cat([state["frames"][:, 1:], nxt[:, None]], 1),
                "actions": torch.cat([acts[:, 1:], torch.zeros_like(acts[:, :1])], 1),
            }
            out.append(nxt)
        return Sample(fr.to_unit(torch.stack(out, 1)), settings.num_steps)

    @torch.no_grad()
    def act(
        self,
        obs: Any,
        state: Any = None,
        *,
        first: Tensor | None = None,
        eval_mode: bool = False,
        task: Any = None,
    ) -> tuple[Tensor, Any]:
        """One-hot actions ``(B, A)`` sampled from the policy (epsilon-greedy unless
        ``eval_mode``), and the LSTM state ``(h, c)``."""
        x = self._frames(obs, 1)
        b = x.shape[0]
        ac = self.actor_critic
        if state is None:
            z = x.new_zeros(b, ac.lstm_dim)
            state = (z, z.clone())
        elif first is not None:
            keep = (~torch.as_tensor(first, device=x.device).bool().view(-1, 1)).float()
            state = (state[0] * keep, state[1] * keep)
        logits, _, state = ac(x, state)
        a = Categorical(logits=logits).sample()
        if not eval_mode and self.config.epsilon > 0:
            rand = torch.rand(b, device=x.device) < self.config.epsilon
            a = torch.where(rand, torch.randint_like(a, self.config.action_dim), a)
        return F.one_hot(a, self.config.action_dim).float(), state
