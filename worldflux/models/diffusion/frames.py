"""Frame and action bookkeeping of the diffusion family: input checks, ``[-1, 1]`` frames,
conditioning windows with the reference's episode-start padding.

worldflux batches store the action that *led to* each step (``action[t]`` arrives at
``obs[t]``); DIAMOND conditions on the action *taken at* each frame, i.e. ``action[t + 1]``.
Sequences sampled from the replay may cross an episode start; frames and actions of the previous
episode inside a window are replaced by the reference's padding (gray frames, action 0), which is
what DIAMOND sees at the start of an episode.

Axis legend: ``B`` batch, ``T`` time, ``N`` window length, ``C, S`` image channels and side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from worldflux.errors import ShapeError


def to_model_frames(obs: Any, obs_shape: Sequence[int], lead: int, device: torch.device) -> Tensor:
    """``(*lead, C, S, S)`` uint8 ``[0, 255]`` or float ``[0, 1]`` -> float ``[-1, 1]``."""
    if isinstance(obs, Mapping):
        if len(obs) != 1:
            raise ShapeError(f"diffusion takes one image observation, got keys {sorted(obs)}")
        obs = next(iter(obs.values()))
    x = torch.as_tensor(obs, device=device)
    names = "(B, T, C, S, S)" if lead == 2 else "(B, C, S, S)"
    if x.dim() != lead + 3 or list(x.shape[-3:]) != list(obs_shape):
        raise ShapeError(
            f"frames must be {names} with (C, S, S) = {tuple(obs_shape)}, got {tuple(x.shape)}"
        )
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x * 2 - 1


def to_unit(x: Tensor) -> Tensor:
    """``[-1, 1]`` frames -> ``[0, 1]``."""
    return ((x + 1) / 2).clamp(0, 1)


def action_indices(action: Any, num_actions: int, lead: Sequence[int]) -> Tensor:
    """One-hot actions ``(*lead, A)`` or indices ``(*lead,)`` -> long indices ``(*lead,)``."""
    a = torch.as_tensor(action)
    if a.dtype in (torch.long, torch.int32, torch.int64) and tuple(a.shape) == tuple(lead):
        idx = a.long()
    elif tuple(a.shape) == (*lead, num_actions):
        idx = a.argmax(-1)
    else:
        raise ShapeError(
            f"actions must be one-hot {(*lead, num_actions)} or indices {tuple(lead)}, got "
            f"{tuple(a.shape)}"
        )
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= num_actions):
        raise ShapeError(f"action indices must lie in [0, {num_actions - 1}]")
    return idx


def episode_ids(batch: Mapping[str, Any], lead: Sequence[int], device: torch.device) -> Tensor:
    """``(B, T)`` running count of episode starts (equal ids: same episode)."""
    first = batch.get("first")
    if first is None:
        return torch.zeros(*lead, dtype=torch.long, device=device)
    first = torch.as_tensor(first, device=device).bool()
    if tuple(first.shape) != tuple(lead):
        raise ShapeError(f"first must be {tuple(lead)}, got {tuple(first.shape)}")
    return first.long().cumsum(1)


def left_pad(x: Tensor, act: Tensor, episode: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """Pad sequences shorter than ``n`` on the left (padding counts as another episode)."""
    pad = n - x.shape[1]
    if pad <= 0:
        return x, act, episode
    x = torch.cat([x.new_zeros(x.shape[0], pad, *x.shape[2:]), x], 1)
    act = F.pad(act, (pad, 0))
    episode = F.pad(episode, (pad, 0), value=-1)
    return x, act, episode


def window(
    x: Tensor, act: Tensor, episode: Tensor, i: int, n: int, include_target: bool = False
) -> tuple[Tensor, Tensor]:
    """Frames ``x[:, i : i + n]`` and the actions taken at them, ``(B, N, C, S, S)`` and
    ``(B, N)``, padded where they belong to another episode than the reference step.

    The reference step is the predicted frame ``i + n`` (``include_target`` false) or the last
    window frame ``i + n - 1``; the action taken at the last frame of the sequence is 0.
    """
    ref = i + n - 1 if include_target else i + n
    same = episode[:, i : i + n] == episode[:, ref : ref + 1]
    frames = x[:, i : i + n] * same[:, :, None, None, None].to(x.dtype)
    taken = torch.cat([act[:, 1:], torch.zeros_like(act[:, :1])], 1)[:, i : i + n]
    return frames, taken * same.long()


def state_from_context(model: Any, context: Any) -> dict[str, Tensor]:
    """The conditioning window of a ``sample`` context (see :meth:`Diffusion.sample`)."""
    n = model.config.num_steps_conditioning
    action = None
    if isinstance(context, Mapping):
        if "obs" not in context:
            raise ShapeError(f"a sample context mapping needs 'obs', got keys {sorted(context)}")
        obs, action = context["obs"], context.get("action")
    else:
        obs = context
    obs = torch.as_tensor(obs)
    if obs.dim() == 4:
        obs = obs[:, None]
    if obs.dim() != 5 or not 1 <= obs.shape[1] <= n:
        raise ShapeError(
            f"sample context must be (B, C, S, S) or (B, T, C, S, S) with 1 <= T <= "
            f"num_steps_conditioning={n} frames, got {tuple(obs.shape)}"
        )
    lead = obs.shape[:2]
    if action is None:
        action = torch.zeros(lead, dtype=torch.long)
    return model.context_state(
        {"obs": obs, "action": action_indices(action, model.config.action_dim, lead)}
    )
