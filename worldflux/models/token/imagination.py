"""Imagination in IRIS's world model with a key-value cache, and the actor-critic's loss.

Reference: eloialonso/iris @ 24326aa, ``src/envs/world_model_env.py`` (stepping the GPT token by
token with a cache) and ``src/models/actor_critic.py`` (``imagine``, ``compute_loss``). The random
draws happen in the reference's order (action, then reward, end and the frame's tokens), so with
the same seed both codes imagine the same trajectories.

Axis legend: ``B`` batch, ``H`` horizon, ``K`` tokens per frame, ``A`` actions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import Categorical

from worldflux.models.token.gpt import TokenWorldModelNet, WorldModelOutput
from worldflux.models.token.tokenizer import Tokenizer
from worldflux.nn.transformer import KVCache


class TokenEnv:
    """The world model as a batched environment over token frames (no gradients).

    Args:
        tokenizer: decodes token frames to pixels.
        world_model: the GPT.
        tokens: the start frames' token ids ``(B, K)``.
    """

    def __init__(
        self, tokenizer: Tokenizer, world_model: TokenWorldModelNet, tokens: Tensor
    ) -> None:
        self.tokenizer, self.world_model = tokenizer, world_model
        self.tokens = tokens
        self.cache: KVCache = world_model.new_cache(tokens.shape[0])
        self._refresh()

    @torch.no_grad()
    def _refresh(self) -> None:
        """Start a fresh context holding only the current frame (the reference's refresh)."""
        self.cache = self.world_model.new_cache(self.tokens.shape[0])
        self.world_model(self.tokens, self.cache)

    @torch.no_grad()
    def frame(self) -> Tensor:
        """The current frame decoded to pixels ``(B, 3, H, W)`` in ``[0, 1]``."""
        rec = self.tokenizer.decode(self.tokenizer.embed_tokens(self.tokens))
        return rec.add(1).div(2).clamp(0, 1)

    @torch.no_grad()
    def step(self, action: Tensor, predict_next: bool = True) -> tuple[Tensor, Tensor]:
        """Feed action ids ``(B,)``; sample reward ``(B,)`` in {-1, 0, 1}, end ``(B,)`` and,
        when ``predict_next``, the next frame's tokens (then available as :attr:`tokens`)."""
        k = self.tokens.shape[1]
        passes = k + 1 if predict_next else 1
        if self.cache.length + passes > self.world_model.max_tokens:
            self._refresh()
        token = action.reshape(-1, 1)
        new = []
        reward = end = torch.empty(0)
        for i in range(passes):
            out: WorldModelOutput = self.world_model(token, self.cache)
            if i == 0:
                reward = Categorical(logits=out.reward[:, -1]).sample().float() - 1
                end = Categorical(logits=out.end[:, -1]).sample().bool()
            if i < k:
                token = Categorical(logits=out.obs[:, -1]).sample().reshape(-1, 1)
                new.append(token)
        if predict_next:
            self.tokens = torch.cat(new, 1)
        return reward, end


@dataclass
class Imagined:
    """Imagined trajectories of the actor-critic.

    Attributes:
        actions: ``(B, H)`` ids; logits ``(B, H, A)`` and values ``(B, H)`` carry gradients.
        rewards, ends: ``(B, H)`` sampled from the world model.
        tokens: ``(B, H, K)`` the frames the actor saw (as tokens).
    """

    actions: Tensor
    logits: Tensor
    values: Tensor
    rewards: Tensor
    ends: Tensor
    tokens: Tensor


def imagine(
    tokenizer: Tokenizer,
    world_model: TokenWorldModelNet,
    actor_critic: torch.nn.Module,
    burn_frames: Tensor | None,
    burn_mask: Tensor | None,
    start: Tensor,
    horizon: int,
    env: TokenEnv | None = None,
) -> Imagined:
    """Burn the actor-critic in on ``burn_frames`` and imagine ``horizon`` steps from ``start``.

    Args:
        tokenizer, world_model, actor_critic: the three parts (tokenizer and world model are
            used without gradients and in eval mode, as the reference's ``WorldModelEnv``).
        burn_frames: ``(B, T, 3, H, W)`` in ``[-1, 1]`` before the start frame, or ``None``.
        burn_mask: ``(B, T)`` which burn-in steps belong to the start frame's episode.
        start: the start frames ``(B, 3, H, W)`` in ``[-1, 1]``.
        horizon: imagined steps.
        env: the environment to imagine in, standing at ``start`` (default: the world model,
            a :class:`TokenEnv` from ``start``'s tokens); diagnostics pass the true dynamics.
    """
    modes = tokenizer.training, world_model.training
    tokenizer.eval(), world_model.eval()
    try:
        b = start.shape[0]
        state = actor_critic.initial_state(b)
        if burn_frames is not None and burn_mask is not None:
            with torch.no_grad():
                q = tokenizer.encode(burn_frames)
                frames = tokenizer.decode(q.z_q).add(1).div(2).clamp(0, 1)
                for t in range(frames.shape[1]):
                    m = burn_mask[:, t]
                    if m.any():
                        _, _, nxt = actor_critic(frames[:, t], state)
                        state = tuple(torch.where(m[:, None], n, s) for n, s in zip(nxt, state))
        if env is None:
            with torch.no_grad():
                env = TokenEnv(tokenizer, world_model, tokenizer.encode(start).tokens)
        frame = env.frame()
        out: dict[str, list[Tensor]] = {k: [] for k in ("a", "l", "v", "r", "e", "t")}
        for k in range(horizon):
            out["t"].append(env.tokens)
            logits, value, state = actor_critic(frame, state)
            action = Categorical(logits=logits).sample()
            reward, end = env.step(action, predict_next=k < horizon - 1)
            if k < horizon - 1:
                frame = env.frame()
            for key, v in zip("alvre", (action, logits, value, reward, end)):
                out[key].append(v)
    finally:
        tokenizer.train(modes[0]), world_model.train(modes[1])
    return Imagined(*(torch.stack(out[k], 1) for k in ("a", "l", "v", "r", "e", "t")))
