"""GameGAN: Kim, Zhou, Philion, Torralba & Fidler, "Learning to Simulate Dynamic Environments
with GameGAN", CVPR 2020. Reference implementation: nv-tlabs/GameGAN_code @ 1195c39
(``simulator_model/*.py``, ``trainer.py``, ``config.py``, ``scripts/*.sh``); every parameter
count and default here comes from that commit.

The generator plays the game: from a frame, an action and noise, the dynamics engine (an
action-conditioned LSTM, optionally with a 2-D memory) advances its state and the rendering
engine draws the next frame. Training unrolls ``T - 1`` steps per sequence, feeding ground-truth
frames for the first ``warm_up`` steps (decaying over training) and its own frames afterwards,
then alternates a generator update (one Adam over the temporal and graphics parts, two parameter
groups, betas (0, 0.9)) with a discriminator update (Adam, betas (0, 0.9)) on the same sequences:
the ``generator`` and ``discriminator`` phases of ``conf/model/gan/base.yaml``.

Axis legend: ``B`` batch, ``T`` sequence length, ``H`` horizon, ``A`` actions, ``C, S`` image
channels and side, ``D`` hidden size, ``Z`` noise size, ``N = (T - 1) B`` time-major frames.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from worldflux.core.model import LossOutput, WorldModel
from worldflux.core.protocols import Rollout, Sample
from worldflux.errors import ShapeError, UnsupportedOperationError
from worldflux.models.gan import losses
from worldflux.models.gan.config import GameGANConfig
from worldflux.models.gan.discriminator import Discriminator
from worldflux.models.gan.dynamics import DynamicsEngine, FrameEncoder, Memory
from worldflux.models.gan.renderer import RenderingEngine
from worldflux.models.gan.sizes import residual_blocks, simple_blocks
from worldflux.models.gan.unroll import Unroll, cycle_loss, unroll

State = dict[str, Tensor]


class GameGAN(WorldModel):
    """GameGAN generator (encoder, dynamics engine, memory, renderer) and discriminator."""

    config: GameGANConfig
    config_class = GameGANConfig
    capabilities = frozenset(
        {"initial_state", "encode", "observe", "transition", "decode", "rollout", "loss", "sample"}
    )
    fsdp_wrap_units = ("GBlock", "SimpleGBlock", "DBlock")  # renderer and discriminator blocks

    def __init__(self, config: Mapping[str, Any] | GameGANConfig) -> None:
        super().__init__(config)
        c = self.config
        channels, side = int(c.obs_shape[0]), int(c.obs_shape[1])
        state_dim = c.memory_dim if c.memory else c.hidden_dim
        self.encoder = FrameEncoder(channels, side, state_dim)
        self.engine = DynamicsEngine(
            c.action_dim, c.z_dim, c.hidden_dim, state_dim, c.memory_dim if c.memory else 0
        )
        self.memory = (
            Memory(
                c.action_dim,
                c.hidden_dim,
                c.memory_dim,
                c.memory_cells,
                c.memory_flip_actions,
                c.softmax_kernel,
                c.kernel_temperature,
                c.memory_query_from_h,
            )
            if c.memory
            else None
        )
        blocks = (simple_blocks if c.simple_blocks else residual_blocks)(side, c.bottom_width)
        self.renderer = RenderingEngine(
            in_dim=state_dim,
            channels=c.nfilter_g,
            out_channels=channels,
            num_blocks=blocks,
            bottom_width=c.bottom_width,
            num_components=c.num_components,
            simple_blocks=c.simple_blocks,
            attention=c.g_attention,
            with_memory=c.memory,
            fixed_v_dim=c.fixed_v_dim,
            att_dim=c.att_dim,
            spade_index=c.spade_index,
            map_temperature=c.map_temperature,
            mask_temperature=c.mask_temperature,
            sigmoid_maps=c.sigmoid_maps,
        )
        self.discriminator = Discriminator(
            side,
            channels,
            c.action_dim,
            c.z_dim,
            c.nfilter_d,
            c.nfilter_d_temporal,
            c.temporal_window,
            c.simple_blocks,
            c.transition_dim,
        )

    # ------------------------------------------------------------------ inputs
    def _param_device(self) -> torch.device:
        return self.engine.state_bias[0].weight.device

    def frames(self, obs: Any, lead: int) -> Tensor:
        """Images ``(*lead, C, S, S)`` (uint8 in [0, 255] or float in [0, 1]) to ``[-1, 1]``."""
        if isinstance(obs, Mapping):
            if len(obs) != 1:
                raise ShapeError(f"GameGAN takes one image observation, got keys {sorted(obs)}")
            obs = next(iter(obs.values()))
        x = torch.as_tensor(obs, device=self._param_device())
        want = tuple(self.config.obs_shape)
        if x.dim() != lead + 3 or tuple(x.shape[lead:]) != want:
            names = "(B, T" if lead == 2 else "(B"
            raise ShapeError(
                f"obs must be images {names}, {', '.join(map(str, want))}) for obs_shape "
                f"{list(want)}, got shape {tuple(x.shape)}"
            )
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        return x * 2.0 - 1.0

    def actions(self, action: Any, lead: tuple[int, ...]) -> Tensor:
        """One-hot actions ``(*lead, A)`` from one-hot floats or integer indices ``(*lead)``.

        All-zero rows are allowed (the format's placeholder before an episode's first step).
        """
        a = torch.as_tensor(action, device=self._param_device())
        n = self.config.action_dim
        if not torch.is_floating_point(a):
            if tuple(a.shape) != lead:
                raise ShapeError(f"integer actions must have shape {lead}, got {tuple(a.shape)}")
            if a.numel() and (a.min() < 0 or a.max() >= n):
                raise ShapeError(
                    f"actions must be indices in [0, {n}) (action_dim={n}), got values in "
                    f"[{int(a.min())}, {int(a.max())}]"
                )
            return F.one_hot(a.long(), n).float()
        if tuple(a.shape) != (*lead, n):
            raise ShapeError(
                f"actions must have shape {(*lead, n)} (one-hot over action_dim={n}), got "
                f"{tuple(a.shape)}"
            )
        binary = ((a == 0) | (a == 1)).all()
        if not binary or (a.sum(-1) > 1).any():
            raise ShapeError(
                f"actions must be one-hot vectors over the {n} discrete actions (entries 0 or 1, "
                "at most one 1 per step); got values outside the action space"
            )
        return a.float()

    def _sequence(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        """Time-major frames ``(T, B, C, S, S)`` and the actions taken at ``0..T-2``."""
        frames = self.frames(batch["obs"], 2)
        b, t = frames.shape[:2]
        if t < 3:
            raise ShapeError(f"GameGAN trains on sequences of >= 3 frames, got T={t}")
        action = self.actions(batch["action"], (b, t))
        # action[t] led to obs[t]; the generator steps frame t with the action taken there
        return frames.transpose(0, 1), action[:, 1:].transpose(0, 1)

    # ------------------------------------------------------------------ training
    def current_warm_up(self, length: int) -> int:
        """Ground-truth frames fed this update: ``warm_up`` decaying linearly, rounded up."""
        c = self.config
        w = c.warm_up
        if c.warm_up_decay_updates > 0:
            frac = 1.0 - self.updates_done / c.warm_up_decay_updates
            w = max(c.min_warm_up, math.ceil(c.warm_up * frac))
        return min(w, length - 1)

    def draw_noise(self, steps: int, batch: int, device: torch.device) -> Tensor:
        """The generator's noise ``(steps, B, Z)`` for one training unroll, ``N(0, I)``."""
        return torch.randn(steps, batch, self.config.z_dim, device=device)

    def _wrong_actions(self, actions: Tensor) -> Tensor:
        """A uniformly drawn different action for every step (the reference's ``neg_actions``)."""
        n = self.config.action_dim
        shift = torch.randint(1, max(n, 2), actions.shape[:-1], device=actions.device)
        return F.one_hot((actions.argmax(-1) + shift) % n, n).float()

    def _generator_loss(self, batch: Mapping[str, Any]) -> LossOutput:
        c = self.config
        frames, actions = self._sequence(batch)
        t, b = frames.shape[:2]
        w = self.current_warm_up(t)
        noise = self.draw_noise(t - 1, b, frames.device)
        gen = unroll(self, frames, actions, w, noise)
        fake, real = gen.frames.flatten(0, 1), frames[1:].flatten(0, 1)
        d_fake = self.discriminator(fake, actions, frames, w)
        d_real = self.discriminator(real, actions, frames, w)
        labels = actions.argmax(-1).flatten()
        terms = losses.generator_terms(
            d_fake, d_real, labels, noise.flatten(0, 1), c.gan_loss, c.feature_l2
        )
        weighted = {
            "g_temporal": terms["g_temporal"],
            "g_single_frame": terms["g_single_frame"],
            "g_action": terms["g_action"],
            "g_z_recon": c.gen_info_loss_multiplier * terms["g_z_recon"],
            "g_action_recon": terms["g_action_recon"],
            "feature_match": c.feature_loss_multiplier * terms["feature_match"],
            "recon": c.recon_loss_multiplier * losses.frame_recon(fake, real),
        }
        if c.memory and c.alpha_loss_multiplier > 0:
            weighted["alpha"] = c.alpha_loss_multiplier * gen.alpha_loss
        total = sum(weighted.values(), torch.zeros((), device=frames.device))
        if c.memory and c.cycle_loss:
            # reaches only the temporal part (the renderer's parameters are detached in it)
            weighted["cycle"] = c.rev_recon_loss_multiplier * cycle_loss(self, gen)
            total = total + weighted["cycle"]
        keep = {
            "frames": frames,
            "actions": actions,
            "fake": fake.detach(),
            "noise": noise,
            "warm_up": w,
        }
        metrics = {"gan/warm_up": torch.tensor(float(w))}
        return LossOutput(total, weighted, metrics, keep)

    def _discriminator_loss(self, gen: Mapping[str, Any]) -> LossOutput:
        c = self.config
        frames, actions, w = gen["frames"].detach(), gen["actions"], gen["warm_up"]
        t = frames.shape[0]
        labels = actions.argmax(-1).flatten()
        with torch.enable_grad():  # the R1 penalty differentiates through the real pass
            real_in = frames[1:].flatten(0, 1).clone().requires_grad_(True)
            d_real = self.discriminator(real_in, actions, frames, w, self._wrong_actions(actions))
            real = losses.discriminator_real_terms(d_real, labels, c.gan_loss)
            reg, reg_temporal = losses.r1_terms(d_real, real_in, t)
        d_fake = self.discriminator(gen["fake"], actions, frames, w)
        fake = losses.discriminator_fake_terms(d_fake, gen["noise"].flatten(0, 1), c.gan_loss)
        weighted = {
            **real,
            "d_r1": c.r1_weight * reg,
            "d_r1_temporal": c.r1_temporal_weight * reg_temporal,
            **fake,
        }
        total = sum(weighted.values(), torch.zeros((), device=frames.device))
        metrics = {
            "gan/d_real_logit": d_real.single.detach().mean(),
            "gan/d_fake_logit": d_fake.single.detach().mean(),
        }
        return LossOutput(total, weighted, metrics)

    def phase_loss(
        self, name: str, batch: Mapping[str, Any], outputs: Mapping[str, LossOutput]
    ) -> LossOutput:
        """The ``generator`` loss, or the ``discriminator`` loss on the generator's sequences."""
        if name == "generator":
            return self._generator_loss(batch)
        if name == "discriminator":
            if "generator" not in outputs:
                raise UnsupportedOperationError(
                    "the discriminator phase trains on the generator phase's rollouts; declare "
                    "it with `batch: generator` after the generator phase"
                )
            return self._discriminator_loss(outputs["generator"].outputs)
        raise UnsupportedOperationError(
            f"GameGAN has phases 'generator' and 'discriminator', not {name!r}"
        )

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """Generator and discriminator losses on one batch (``total`` is their sum)."""
        g = self._generator_loss(batch)
        d = self._discriminator_loss(g.outputs)
        return LossOutput(
            g.total + d.total, {**g.components, **d.components}, {**g.metrics, **d.metrics}
        )

    # ------------------------------------------------------------------ the contract
    def initial_state(self, batch_size: int) -> State:
        """Zero LSTM state, a zero (mid-grey) frame and, with memory, the initial memory."""
        c, dev = self.config, self._param_device()
        h = torch.zeros(batch_size, c.hidden_dim, device=dev)
        state = {"h": h, "c": torch.zeros_like(h)}
        state["frame"] = torch.zeros(batch_size, *c.obs_shape, device=dev)
        if self.memory is not None:
            state["memory"], state["alpha"], state["read_v"] = self.memory.init_state(batch_size)
        return state

    def encode(self, obs: Any) -> Tensor:
        """Frame codes ``(B, D)`` of images ``(B, C, S, S)`` (or ``(B, T, D)`` of ``(B, T, ...)``)."""
        x = torch.as_tensor(obs["obs"] if isinstance(obs, Mapping) else obs)
        lead = 2 if x.dim() == len(self.config.obs_shape) + 2 else 1
        frames = self.frames(x, lead)
        return self.encoder(frames.flatten(0, lead - 1)).view(*frames.shape[:lead], -1)

    def _step(
        self, state: State, action: Tensor, frame: Tensor, generator: torch.Generator | None
    ) -> State:
        noise = torch.randn(
            frame.shape[0], self.config.z_dim, generator=generator, device=frame.device
        )
        out = unroll(self, frame[None], action[None], 0, noise[None], state=state, keep_last=True)
        return out.state

    def observe(
        self, obs: Any, action: Tensor, first: Tensor, state: Any = None
    ) -> tuple[Any, Any]:
        """Feed ground-truth frames ``(B, T, ...)``; states hold ``h (B, T, D)`` and ``frame``."""
        frames = self.frames(obs, 2)
        b, t = frames.shape[:2]
        acts = self.actions(action, (b, t))
        first = torch.as_tensor(first, device=frames.device).bool()
        started = state is not None
        state = self.initial_state(b) if state is None else dict(state)
        hs = []
        for i in range(t):
            if i > 0 or started:
                state = self._step(state, acts[:, i], state["frame"], None)
            fresh = self.initial_state(b)
            reset = first[:, i]
            state = {
                k: torch.where(reset.view(-1, *[1] * (v.dim() - 1)), fresh[k], v)
                for k, v in state.items()
            }
            state["frame"] = frames[:, i]
            hs.append(state["h"])
        return {"h": torch.stack(hs, 1)}, state

    def transition(
        self, state: Any, action: Tensor, generator: torch.Generator | None = None
    ) -> State:
        """Generate the next frame under ``action (B, A)``; it becomes the state's frame."""
        frame = state["frame"]
        return self._step(dict(state), self.actions(action, (frame.shape[0],)), frame, generator)

    def decode(self, state: Any) -> dict[str, Any]:
        """The state's frame (or a :class:`Rollout`'s frames) as images in ``[0, 1]``."""
        if isinstance(state, Rollout):
            state = state.states
        return {"obs": (state["frame"].clamp(-1, 1) + 1) / 2}

    def rollout(
        self, state: Any, actions: Tensor, generator: torch.Generator | None = None
    ) -> Rollout:
        """Open-loop generation over ``actions (B, H, A)``: ``h (B, H, D)``, ``frame (B, H, C, S, S)``."""
        b, horizon = torch.as_tensor(actions).shape[:2]
        acts = self.actions(actions, (b, horizon))
        hs, frames = [], []
        for i in range(horizon):
            state = self.transition(state, acts[:, i], generator)
            hs.append(state["h"])
            frames.append(state["frame"])
        return Rollout(
            states={"h": torch.stack(hs, 1), "frame": torch.stack(frames, 1)}, actions=acts
        )

    def sample(
        self, context: Any, *, num_steps: int, generator: torch.Generator | None = None
    ) -> Sample:
        """``num_steps`` generated frames ``(B, num_steps, C, S, S)`` in ``[0, 1]``.

        ``context`` is a start frame ``(B, C, S, S)``, or ``{"obs": frame, "actions": (B,
        num_steps, A)}``; without actions, actions are drawn uniformly with ``generator``.
        """
        ctx = context if isinstance(context, Mapping) else {"obs": context}
        frame = self.frames(ctx["obs"], 1)
        b = frame.shape[0]
        actions = ctx.get("actions")
        if actions is None:
            index = torch.randint(0, self.config.action_dim, (b, num_steps), generator=generator)
            actions = index.to(frame.device)
        state = {**self.initial_state(b), "frame": frame}
        out = self.rollout(state, actions, generator)
        return Sample(obs=(out.states["frame"].clamp(-1, 1) + 1) / 2, num_steps=num_steps)


__all__ = ["GameGAN", "Unroll"]
