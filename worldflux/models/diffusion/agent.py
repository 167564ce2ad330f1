"""DIAMOND's reward/termination model and actor-critic (CNN encoders with LSTMs).

Reference: eloialonso/diamond @ 5bcd159, ``src/models/rew_end_model.py`` and
``src/models/actor_critic.py``. Parameter names match the reference's state dicts.

Axis legend: ``B`` batch, ``T`` time, ``C`` image channels, ``H, W`` image size, ``E`` condition
width, ``L`` LSTM width, ``A`` number of actions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from worldflux.errors import ConfigError
from worldflux.models.diffusion.blocks import (
    ResBlocks,
    SmallResBlock,
    check_levels,
    conv3x3,
    down_blocks,
    init_lstm,
)
from worldflux.nn.unet import Downsample

LSTMState = tuple[Tensor, Tensor]


class RewEndEncoder(nn.Module):
    """Conditioned ResBlock levels with stride-2 downsampling, then two attention blocks."""

    def __init__(
        self,
        in_channels: int,
        cond_channels: int,
        depths: Sequence[int],
        channels: Sequence[int],
        attn_depths: Sequence[bool],
    ) -> None:
        super().__init__()
        check_levels("rew_end_model", channels, depths, attn_depths)
        self.conv_in = conv3x3(in_channels, channels[0])
        blocks = down_blocks(channels, depths, attn_depths, cond_channels)
        blocks.append(ResBlocks([channels[-1]] * 2, [channels[-1]] * 2, cond_channels, True))
        self.blocks = nn.ModuleList(blocks)
        downs: list[nn.Module] = [nn.Identity()] + [Downsample(c) for c in channels[:-1]]
        for d in downs[1:]:
            nn.init.orthogonal_(d.conv.weight)  # type: ignore[union-attr,arg-type]
        self.downsamples = nn.ModuleList([*downs, nn.Identity()])

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        x = self.conv_in(x)
        for block, down in zip(self.blocks, self.downsamples):
            x, _ = block(down(x), cond)
        return x


class RewEndModel(nn.Module):
    """Predicts the reward sign (3 classes) and termination (2 classes) of a transition.

    Args:
        img_channels, img_size, num_actions: sizes given by the model.
        lstm_dim: LSTM width.
        cond_channels: width of the action embedding that conditions the encoder.
        channels, depths, attn_depths: the encoder's levels.
    """

    def __init__(
        self,
        img_channels: int,
        img_size: int,
        num_actions: int,
        lstm_dim: int,
        cond_channels: int,
        channels: Sequence[int],
        depths: Sequence[int],
        attn_depths: Sequence[bool],
    ) -> None:
        super().__init__()
        self.encoder = RewEndEncoder(2 * img_channels, cond_channels, depths, channels, attn_depths)
        self.act_emb = nn.Embedding(num_actions, cond_channels)
        side = img_size
        for _ in range(len(depths) - 1):
            side = math.ceil(side / 2)  # stride-2 convolutions with padding 1
        self.lstm = nn.LSTM(channels[-1] * side * side, lstm_dim, batch_first=True)
        self.head = nn.Sequential(
            nn.Linear(lstm_dim, lstm_dim), nn.SiLU(), nn.Linear(lstm_dim, 3 + 2, bias=False)
        )
        init_lstm(self.lstm)

    def forward(
        self,
        obs: Tensor,
        act: Tensor,
        next_obs: Tensor,
        hx_cx: LSTMState | None = None,
        first: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, LSTMState]:
        """Logits of transitions ``obs (B, T, C, H, W) --act (B, T)--> next_obs``.

        ``first (B, T)`` marks transitions that start a new episode: the LSTM state is reset
        there (``None``: one episode per row, as in the reference's segments).

        Returns:
            ``(reward logits (B, T, 3), end logits (B, T, 2), (h, c) each (1, B, L))``.
        """
        b, t = obs.shape[:2]
        x = torch.cat((obs.flatten(0, 1), next_obs.flatten(0, 1)), dim=1)
        x = self.encoder(x, self.act_emb(act.reshape(b * t))).reshape(b, t, -1)
        if first is None or not bool(first[:, 1:].any()):  # a start at t = 0 needs no reset
            x, hx_cx = self.lstm(x, hx_cx)
        else:
            outs = []
            for i in range(t):
                if hx_cx is not None:
                    keep = (~first[:, i]).to(x.dtype)[None, :, None]
                    hx_cx = (hx_cx[0] * keep, hx_cx[1] * keep)
                y, hx_cx = self.lstm(x[:, i : i + 1], hx_cx)
                outs.append(y)
            x = torch.cat(outs, 1)
        assert hx_cx is not None
        logits = self.head(x)
        return logits[..., :3], logits[..., 3:], hx_cx


class ActorCritic(nn.Module):
    """CNN encoder (``SmallResBlock`` levels with 2x max-pooling), LSTM cell, policy and value.

    Args:
        img_channels, img_size, num_actions: sizes given by the model.
        lstm_dim: LSTM cell width.
        channels: per level encoder width.
        down: per level, whether it ends with a 2x max-pool.
    """

    def __init__(
        self,
        img_channels: int,
        img_size: int,
        num_actions: int,
        lstm_dim: int,
        channels: Sequence[int],
        down: Sequence[bool],
    ) -> None:
        super().__init__()
        if len(channels) != len(down) or not channels or min(channels) < 1:
            raise ConfigError(
                f"actor_critic: channels and down need one entry per level and positive widths, "
                f"got {list(channels)} and {list(down)}"
            )
        self.lstm_dim = lstm_dim
        layers: list[nn.Module] = [conv3x3(img_channels, channels[0])]
        side = img_size
        for i, ch in enumerate(channels):
            layers.append(SmallResBlock(channels[max(0, i - 1)], ch))
            if down[i]:
                layers.append(nn.MaxPool2d(2))
                side //= 2
        if side < 1:
            raise ConfigError(
                f"actor_critic: {sum(map(bool, down))} poolings leave no pixel of {img_size}"
            )
        self.encoder = nn.Module()  # the reference nests its Sequential one level deeper
        self.encoder.encoder = nn.Sequential(*layers)
        self.lstm = nn.LSTMCell(channels[-1] * side * side, lstm_dim)
        self.critic_linear = nn.Linear(lstm_dim, 1)
        self.actor_linear = nn.Linear(lstm_dim, num_actions)
        for lin in (self.actor_linear, self.critic_linear):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        init_lstm(self.lstm)

    def forward(self, obs: Tensor, hx_cx: LSTMState) -> tuple[Tensor, Tensor, LSTMState]:
        """``obs (B, C, H, W)`` in ``[-1, 1]`` -> ``(logits (B, A), value (B,), (h, c))``."""
        x = self.encoder.encoder(obs).flatten(1)
        hx, cx = self.lstm(x, hx_cx)
        return self.actor_linear(hx), self.critic_linear(hx).squeeze(1), (hx, cx)


@torch.no_grad()
def lambda_returns(
    rew: Tensor, end: Tensor, trunc: Tensor, val_bootstrap: Tensor, gamma: float, lam: float
) -> Tensor:
    """Lambda-returns ``(B, T)`` of clipped (sign) rewards; episodes stop at ``end`` (no
    bootstrap) or ``trunc`` (bootstrap from the next value), as the reference computes them."""
    rew = rew.sign()
    stop = (end + trunc).clip(max=1)
    out = rew + (1 - end) * gamma * ((1 - trunc) * (1 - lam) + trunc) * val_bootstrap
    if lam == 0:
        return out
    last = val_bootstrap[:, -1]
    for t in reversed(range(rew.size(1))):
        out[:, t] += stop[:, t].logical_not() * gamma * lam * last
        last = out[:, t]
    return out
