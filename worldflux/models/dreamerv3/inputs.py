"""Input checks of the DreamerV3 family: observations, actions and replay batches.

Every check raises :class:`worldflux.errors.ShapeError` naming the expected shape, dtype or range.

Axis legend: ``B`` batch, ``T`` time, ``A`` action size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from worldflux.errors import ShapeError


def as_obs_dict(
    obs: Tensor | Mapping[str, Tensor],
    modalities: Mapping[str, Mapping[str, Any]],
    lead: int,
    lead_names: str = "(B)",
) -> dict[str, Tensor]:
    """Check ``obs`` against the modalities with ``lead`` leading axes and return a dict.

    Args:
        obs: one tensor (single-modality models) or ``{name: tensor}``.
        modalities: ``{name: {"kind", "shape"}}`` of the model.
        lead: number of leading batch axes expected (1: ``(B, ...)``, 2: ``(B, T, ...)``).
        lead_names: how to name those axes in error messages.
    """
    if isinstance(obs, Mapping):
        missing = [k for k in modalities if k not in obs]
        if missing:
            raise ShapeError(
                f"observation dict lacks modalities {missing}; expected keys {sorted(modalities)}"
            )
        items = {k: obs[k] for k in modalities}
    else:
        if len(modalities) != 1:
            raise ShapeError(
                f"this model takes a dict of observations with keys {sorted(modalities)}, got a "
                f"{type(obs).__name__}"
            )
        items = {next(iter(modalities)): obs}
    first_lead = None
    for name, value in items.items():
        spec = modalities[name]
        shape = tuple(int(s) for s in spec["shape"])
        want = f"{lead_names[:-1]}, {', '.join(map(str, shape))})"
        if not isinstance(value, Tensor):
            raise ShapeError(f"observation {name!r} must be a torch.Tensor of shape {want}")
        if value.dim() != lead + len(shape) or tuple(value.shape[lead:]) != shape:
            raise ShapeError(
                f"observation {name!r} must have shape {want}, got {tuple(value.shape)}"
            )
        if value.dtype not in (
            torch.uint8,
            torch.float16,
            torch.bfloat16,
            torch.float32,
            torch.float64,
        ):
            kinds = "uint8 in [0, 255] or float in [0, 1]" if spec["kind"] == "image" else "float"
            raise ShapeError(f"observation {name!r} must be {kinds}, got dtype {value.dtype}")
        if spec["kind"] == "vector" and value.dtype == torch.uint8:
            raise ShapeError(f"vector observation {name!r} must be float, got uint8")
        if value.dtype != torch.uint8 and value.numel() and not torch.isfinite(value).all():
            raise ShapeError(f"observation {name!r} must be finite, got NaN or infinite values")
        if first_lead is None:
            first_lead = tuple(value.shape[:lead])
            check_lead(first_lead, lead_names)
        elif tuple(value.shape[:lead]) != first_lead:
            raise ShapeError(
                f"observation {name!r} has leading axes {tuple(value.shape[:lead])}, other "
                f"modalities have {first_lead}"
            )
    return items


def check_lead(lead_shape: tuple[int, ...], lead_names: str = "(B, T)") -> None:
    """Refuse empty batches: every leading axis (batch ``B``, time ``T``, horizon ``H``) >= 1."""
    names = [n.strip() for n in lead_names.strip("()").split(",")]
    for name, size in zip(names, lead_shape, strict=False):
        if size < 1:
            raise ShapeError(
                f"{name} (axis {names.index(name)} of {lead_names}) must be >= 1, got {size}: "
                "DreamerV3 cannot process an empty batch or sequence"
            )


def check_state(
    state: Any,
    shapes: Mapping[str, tuple[int, ...]],
    lead_shape: tuple[int, ...] | None = None,
    lead_names: str = "(B)",
    optional: tuple[str, ...] = (),
) -> None:
    """Check a recurrent state ``{key: (*lead, *shape)}`` against the model's ``shapes``.

    Args:
        state: the state dict a caller passed back (``deter``, ``stoch``, maybe ``action``).
        shapes: the per-sample shape of every key, e.g. ``{"deter": (D,), "stoch": (S, K)}``.
        lead_shape: the expected leading axes (``(B,)``); ``None``: those of ``deter``, which
            every key must share.
        lead_names: how to name the leading axes in error messages.
        optional: keys of ``shapes`` that may be absent.
    """
    if lead_shape is not None:
        check_lead(lead_shape, lead_names)
    want = {k: f"{lead_names[:-1]}, {', '.join(map(str, v))})" for k, v in shapes.items()}
    expected = ", ".join(f"{k} {v}" for k, v in want.items())
    if not isinstance(state, Mapping):
        raise ShapeError(f"state must be a dict with {expected}, got {type(state).__name__}")
    missing = [k for k in shapes if k not in state and k not in optional]
    if missing:
        raise ShapeError(f"state lacks keys {missing}; expected {expected}")
    for key, shape in shapes.items():
        if key not in state:
            continue
        value = state[key]
        if not isinstance(value, Tensor) or value.dim() < len(shape):
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ShapeError(f"state[{key!r}] must have shape {want[key]}, got {got}")
        lead = tuple(value.shape[: value.dim() - len(shape)])
        if lead_shape is None:
            lead_shape = lead
            check_lead(lead_shape, lead_names)
        if tuple(value.shape) != (*lead_shape, *shape):
            raise ShapeError(
                f"state[{key!r}] must have shape {want[key]} = {(*lead_shape, *shape)}, got "
                f"{tuple(value.shape)}"
            )
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ShapeError(f"state[{key!r}] must be finite, got NaN or infinite values")


def check_actions(
    action: Tensor, kind: str, dim: int, lead_shape: tuple[int, ...], lead_names: str = "(B, T)"
) -> Tensor:
    """Check actions ``(*lead_shape, A)``: one-hot (or all-zero) rows, or values in ``[-1, 1]``."""
    check_lead(lead_shape, lead_names)
    want = f"{lead_names[:-1]}, {dim})"
    if not isinstance(action, Tensor) or tuple(action.shape) != (*lead_shape, dim):
        got = tuple(action.shape) if isinstance(action, Tensor) else type(action).__name__
        raise ShapeError(f"actions must have shape {want} = {(*lead_shape, dim)}, got {got}")
    action = action.float()
    if not torch.isfinite(action).all():
        raise ShapeError("actions must be finite")
    if kind == "discrete":
        binary = ((action == 0) | (action == 1)).all()
        rows = action.sum(-1)
        if not binary or not ((rows == 0) | (rows == 1)).all():
            raise ShapeError(
                f"discrete actions must be one-hot rows of size {dim} (all zeros allowed on "
                "episode starts)"
            )
    elif action.numel() and action.abs().max() > 1.0 + 1e-5:
        raise ShapeError(
            f"continuous actions must lie in [-1, 1], got values in [{action.min().item():.3g}, "
            f"{action.max().item():.3g}]"
        )
    return action


def check_flags(value: Tensor, name: str, shape: tuple[int, ...], as_bool: bool) -> Tensor:
    """Check a per-step tensor of shape ``(B, T)`` and convert it to bool or float."""
    if not isinstance(value, Tensor) or tuple(value.shape) != shape:
        got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ShapeError(f"batch[{name!r}] must have shape (B, T) = {shape}, got {got}")
    if as_bool:
        return value.bool()
    value = value.float()
    if not torch.isfinite(value).all():
        raise ShapeError(f"batch[{name!r}] must be finite")
    return value


def episode_last(first: Tensor, terminal: Tensor) -> Tensor:
    """Episode-end flags ``(B, T)``: terminal steps and steps followed by an episode start."""
    last = terminal.clone()
    last[:, :-1] |= first[:, 1:]
    return last


def unpack_sequences(
    batch: Mapping[str, Any],
    modalities: Any,
    action_kind: str,
    action_dim: int,
    device: torch.device,
    owner: str,
    batch_length: int,
) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor, Tensor]:
    """``(obs, action, reward, first, terminal)`` of a replay batch ``(B, T, ...)``, checked.

    Shared by the families of the DreamerV3 lineage (DreamerV3, R2I): every key present, every
    shape ``(B, T)``-led, ``T >= 2`` (lambda-returns need a next step), moved to ``device``.
    """
    for key in ("obs", "action", "reward", "first", "terminal"):
        if key not in batch:
            raise ShapeError(
                f"batch lacks {key!r}; expected keys obs, action, reward, first, terminal "
                "(see worldflux.core.model)"
            )
    obs = as_obs_dict(batch["obs"], modalities, 2, "(B, T)")
    b, t = next(iter(obs.values())).shape[:2]
    if t < 2:
        raise ShapeError(
            f"{owner} trains on sequences of length T >= 2 (lambda-returns need a next step), "
            f"got T = {t}; the reference batch length is {batch_length}"
        )
    obs = {k: v.to(device) for k, v in obs.items()}
    action = check_actions(batch["action"].to(device), action_kind, action_dim, (b, t))
    reward = check_flags(batch["reward"].to(device), "reward", (b, t), as_bool=False)
    first = check_flags(batch["first"].to(device), "first", (b, t), as_bool=True)
    terminal = check_flags(batch["terminal"].to(device), "terminal", (b, t), as_bool=True)
    return obs, action, reward, first, terminal
