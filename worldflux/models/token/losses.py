"""Targets of IRIS's world-model loss from a replay batch.

Reference: eloialonso/iris @ 24326aa, ``WorldModel.compute_labels_world_model``. Steps outside
the first step's episode play the role of the reference's padding (``mask_padding``): their
labels are ignored.

Axis legend: ``B`` batch, ``L`` IRIS steps, ``K`` tokens per frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from worldflux.errors import ShapeError


@dataclass
class WorldModelTargets:
    """Inputs and labels of one world-model update (``-1`` marks an ignored label).

    Attributes:
        tokens: interleaved frame and action tokens ``(B, L * (K + 1))``.
        obs_labels: the next observation token at each observation logit ``(B * (L*K - 1),)``.
        reward_labels: ``sign(r) + 1`` per step ``(B * L,)``.
        end_labels: episode end per step ``(B * L,)``.
        valid: ``(B * L,)`` whether a step belongs to the first step's episode.
    """

    tokens: Tensor
    obs_labels: Tensor
    reward_labels: Tensor
    end_labels: Tensor
    valid: Tensor


def world_model_targets(model: Any, batch: Mapping[str, Any], frames: Tensor) -> WorldModelTargets:
    """Tokens and labels from ``frames (B, L + 1, 3, H, W)`` in ``[-1, 1]`` and the batch."""
    b, t1 = frames.shape[:2]
    length = t1 - 1
    if length < 1:
        raise ShapeError(f"the world-model phase needs sequences of >= 2 steps, got {t1}")
    if length > model.config.max_blocks:
        raise ShapeError(
            f"a world-model sequence of {length} steps exceeds the context of max_blocks="
            f"{model.config.max_blocks} steps"
        )
    dev = frames.device
    with torch.no_grad():
        obs_tokens = model.tokenizer.encode(frames[:, :length]).tokens  # (B, L, K)
    act = model.action_ids(batch["action"])[:, 1:]  # the action taken at each step
    reward = torch.as_tensor(batch["reward"], device=dev).float()[:, 1:]
    first = torch.as_tensor(batch["first"], device=dev).bool()[:, 1:]
    terminal = torch.as_tensor(batch["terminal"], device=dev).bool()[:, 1:]
    # step i is valid while no new episode began at replay steps 1..i+1 and none ended at 1..i
    ended_before = terminal.long().cumsum(1) - terminal.long()
    valid = (first.long().cumsum(1) == 0) & (ended_before == 0)
    tokens = torch.cat([obs_tokens, act[..., None]], -1).flatten(1)
    obs_labels = obs_tokens.masked_fill(~valid[..., None], -1).flatten(1)[:, 1:]
    reward_labels = (reward.sign() + 1).long().masked_fill(~valid, -1)
    end_labels = terminal.long().masked_fill(~valid, -1)
    return WorldModelTargets(
        tokens,
        obs_labels.reshape(-1),
        reward_labels.reshape(-1),
        end_labels.reshape(-1),
        valid.reshape(-1),
    )
