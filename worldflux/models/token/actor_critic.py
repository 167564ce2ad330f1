"""IRIS's actor-critic: a small CNN and an LSTM cell reading reconstructed frames.

Reference: eloialonso/iris @ 24326aa, ``src/models/actor_critic.py`` and ``src/utils.py``
(``compute_lambda_returns``). Four 3x3 convolutions, each followed by 2x2 max-pooling and ReLU,
flatten, an ``LSTMCell``, and two linear heads: action logits and a value.

Axis legend: ``B`` batch, ``T`` time, ``A`` actions, ``C, H, W`` frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ActorCritic(nn.Module):
    """CNN + LSTM cell + policy and value heads.

    Args:
        resolution: frame side ``H`` (frames are ``(3, H, H)`` in ``[0, 1]``).
        action_dim: number of actions ``A``.
        channels: output channels of the four convolutions (``[32, 32, 64, 64]`` in IRIS).
        lstm_dim: LSTM cell width.
    """

    def __init__(
        self, resolution: int, action_dim: int, channels: list[int], lstm_dim: int
    ) -> None:
        super().__init__()
        ins = [3, *channels[:-1]]
        self.convs = nn.ModuleList(
            nn.Conv2d(i, o, 3, 1, 1) for i, o in zip(ins, channels, strict=True)
        )
        side = resolution // 2 ** len(channels)
        self.lstm_dim = lstm_dim
        self.lstm = nn.LSTMCell(channels[-1] * side * side, lstm_dim)
        self.critic_linear = nn.Linear(lstm_dim, 1)
        self.actor_linear = nn.Linear(lstm_dim, action_dim)

    def initial_state(self, batch: int) -> tuple[Tensor, Tensor]:
        """Zero ``(h, c)``, each ``(B, lstm_dim)``."""
        w = self.lstm.weight_hh
        zeros = torch.zeros(batch, self.lstm_dim, device=w.device, dtype=w.dtype)
        return zeros, zeros.clone()

    def forward(
        self, frames: Tensor, state: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """Logits ``(B, A)``, values ``(B,)`` and the next state from frames ``(B, 3, H, W)``."""
        x = frames * 2 - 1
        for conv in self.convs:
            x = F.relu(F.max_pool2d(conv(x), 2, 2))
        h, c = self.lstm(x.flatten(1), state)
        return self.actor_linear(h), self.critic_linear(h).squeeze(-1), (h, c)


def lambda_returns(
    rewards: Tensor, values: Tensor, ends: Tensor, gamma: float, lambda_: float
) -> Tensor:
    """Lambda-returns ``(B, T)`` bootstrapped from the last value (IRIS's recursion).

    ``G_t = r_t + gamma * (1 - end_t) * ((1 - lambda) * v_{t+1} + lambda * G_{t+1})`` and
    ``G_{T-1} = v_{T-1}``.
    """
    # the reference's order of operations, so that returns agree to the last bit
    live = ~ends
    out = [values[:, -1]]
    for t in reversed(range(values.shape[1] - 1)):
        g = rewards[:, t] + live[:, t] * gamma * (1 - lambda_) * values[:, t + 1]
        out.insert(0, g + live[:, t] * gamma * lambda_ * out[0])
    return torch.stack(out, 1)
