"""Training phases: what a family trains, with which optimiser, on which batch, and when.

A family declares its phases in its base YAML under ``phases:``, a list or a mapping from name to
phase (the order is the order in which due phases run within one update)::

    phases:
      model:
        modules: [encoder, dynamics, reward, q_ensemble]   # attribute names of the trained parts
        optimizer: {_target_: torch.optim.Adam, lr: config.lr}
        param_groups: [{modules: [encoder], lr_scale: config.enc_lr_scale}]
        clip_grad_norm: config.grad_clip_norm            # a number, a field reference or null
        batch_size: 256          # null: the family's config.batch_size (or data.batch_size)
        batch_length: 4          # null: the family's config.batch_length (or data.batch_length)
        burn_in: 0               # extra context steps in front of every sequence
        start_updates: 0         # first update the phase runs in
        start_env_steps: 0       # ... and the environment steps it waits for
        every: 1                 # runs in every N-th update from its start
        warmup: 0                # linear learning-rate warm-up over its first N steps ...
        warmup_start: 0.0        # ... from this multiple of the learning rate
        anneal: 0                # linear decay over the last N of total_steps steps ...
        total_steps: 0           # ... (warm-up, constant, anneal: a WSD schedule)
        final_lr_scale: 0.0      # ... to this multiple of the learning rate
        weight_decay: null       # decoupled decay on weights; biases and norm gains get none
      policy:
        modules: [policy]
        batch: model             # trains on the model phase's batch and may read its outputs
        optimizer: {_target_: torch.optim.Adam, lr: config.lr, eps: config.pi_adam_eps}

A string value ``config.<field>`` refers to a field of the family config, so every default lives
in one place (the family's fields) and a Python override of ``lr`` reaches the optimiser. An
*update* is one pass over the phases that are due, whatever number of optimisers steps in it.
This module imports neither torch nor lightning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from worldflux.errors import ConfigError, suggest

#: Prefix of a string value that names a field of the family config.
CONFIG_REF = "config."

_INT_FIELDS = (
    "burn_in",
    "start_updates",
    "start_env_steps",
    "every",
    "warmup",
    "anneal",
    "total_steps",
)


@dataclass(frozen=True)
class ParamGroup:
    """A parameter group of a phase's optimiser: the parameters of ``modules`` with their own
    learning-rate scale (and optionally weight decay)."""

    modules: tuple[str, ...]
    lr_scale: float = 1.0
    weight_decay: float | None = None


@dataclass(frozen=True)
class Phase:
    """One phase (see the module docstring for the meaning of each field)."""

    name: str
    modules: tuple[str, ...]
    optimizer: Mapping[str, Any]
    param_groups: tuple[ParamGroup, ...] = ()
    clip_grad_norm: float | None = None
    batch: str | None = None
    batch_size: int | None = None
    batch_length: int | None = None
    burn_in: int = 0
    start_updates: int = 0
    start_env_steps: int = 0
    every: int = 1
    warmup: int = 0
    weight_decay: float | None = None
    warmup_start: float = 0.0
    anneal: int = 0
    total_steps: int = 0
    final_lr_scale: float = 0.0

    def lr_scale(self, step: int) -> float:
        """The learning-rate multiple of this phase's ``step``-th optimiser step (0-based).

        Warm-up, constant, anneal (WSD): linear from ``warmup_start`` to 1 over the first
        ``warmup`` steps, 1, then linear to ``final_lr_scale`` over the last ``anneal`` of
        ``total_steps`` steps, and ``final_lr_scale`` after them.
        """
        n = step + 1  # the schedule's count after this step's update of the learning rate
        if n < self.warmup:
            return self.warmup_start + (1.0 - self.warmup_start) * n / self.warmup
        if self.anneal and n >= self.total_steps - self.anneal:
            done = min(1.0, (n - (self.total_steps - self.anneal)) / self.anneal)
            return 1.0 + done * (self.final_lr_scale - 1.0)
        return 1.0

    @property
    def scheduled(self) -> bool:
        """Whether the learning rate changes over the phase's steps."""
        return self.warmup > 0 or self.anneal > 0

    def due(self, update: int, env_steps: int) -> bool:
        """Whether the phase runs in update number ``update`` (0-based) at ``env_steps``."""
        if update < self.start_updates or env_steps < self.start_env_steps:
            return False
        return (update - self.start_updates) % self.every == 0

    def sequence_length(self, default: int) -> int:
        """Steps per sampled sequence: ``batch_length`` (or ``default``) plus ``burn_in``."""
        return (self.batch_length or default) + self.burn_in


FIELDS = tuple(f.name for f in dataclasses.fields(Phase))


def _resolve(value: Any, config: Any, where: str) -> Any:
    """Replace ``config.<field>`` strings (also inside dicts and lists) by the config's value."""
    if isinstance(value, str) and value.startswith(CONFIG_REF):
        name = value[len(CONFIG_REF) :]
        if config is None or not hasattr(config, name):
            names = [f.name for f in dataclasses.fields(config)] if config is not None else []
            raise ConfigError(f"{where}: {value!r} names no config field.{suggest(name, names)}")
        return getattr(config, name)
    if isinstance(value, Mapping):
        return {k: _resolve(v, config, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_resolve(v, config, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _number(value: Any, where: str, kind: type, low: float, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok:
        expected = "an integer" if kind is int else "a number"
        raise ConfigError(
            f"{where} must be {expected}{' or null' if allow_none else ''}, got {value!r}"
        )
    if value < low:
        raise ConfigError(f"{where} must be >= {low}, got {value!r}")
    return kind(value)


def _names(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise ConfigError(f"{where} must be a non-empty list of attribute names, got {value!r}")
    return tuple(value)


def parse_phase(name: str, node: Mapping[str, Any], config: Any = None) -> Phase:
    """Validate one phase node; errors name the field (``phases.<name>.<field>``)."""
    where = f"phases.{name}"
    if not isinstance(node, Mapping):
        raise ConfigError(f"{where} must be a mapping of phase fields, got {node!r}")
    unknown = [k for k in node if k not in FIELDS or k == "name"]
    if unknown:
        key = str(unknown[0])
        raise ConfigError(f"unknown phase field {where}.{key}.{suggest(key, list(FIELDS[1:]))}")
    data = _resolve(dict(node), config, where)
    if "modules" not in data:
        raise ConfigError(f"{where}.modules is required (the attribute names it trains)")
    optimizer = data.get("optimizer")
    if not isinstance(optimizer, Mapping) or not isinstance(optimizer.get("_target_"), str):
        raise ConfigError(
            f"{where}.optimizer must be a _target_ node, e.g. {{_target_: torch.optim.Adam, "
            f"lr: 3e-4}}, got {optimizer!r}"
        )
    kwargs: dict[str, Any] = {"name": name, "optimizer": dict(optimizer)}
    kwargs["modules"] = _names(data["modules"], f"{where}.modules")
    groups = data.get("param_groups") or []
    if not isinstance(groups, (list, tuple)):
        raise ConfigError(f"{where}.param_groups must be a list, got {groups!r}")
    parsed = []
    for i, group in enumerate(groups):
        gw = f"{where}.param_groups[{i}]"
        if not isinstance(group, Mapping) or set(group) - {"modules", "lr_scale", "weight_decay"}:
            raise ConfigError(
                f"{gw} must be a mapping with modules, lr_scale and weight_decay, got {group!r}"
            )
        parsed.append(
            ParamGroup(
                modules=_names(group.get("modules"), f"{gw}.modules"),
                lr_scale=_number(group.get("lr_scale", 1.0), f"{gw}.lr_scale", float, 0.0),
                weight_decay=_number(
                    group.get("weight_decay"), f"{gw}.weight_decay", float, 0.0, allow_none=True
                ),
            )
        )
    kwargs["param_groups"] = tuple(parsed)
    kwargs["clip_grad_norm"] = _number(
        data.get("clip_grad_norm"), f"{where}.clip_grad_norm", float, 0.0, allow_none=True
    )
    if kwargs["clip_grad_norm"] == 0.0:
        raise ConfigError(f"{where}.clip_grad_norm must be > 0 or null (no clipping), got 0")
    kwargs["weight_decay"] = _number(
        data.get("weight_decay"), f"{where}.weight_decay", float, 0.0, allow_none=True
    )
    for key in ("warmup_start", "final_lr_scale"):
        kwargs[key] = _number(data.get(key, 0.0), f"{where}.{key}", float, 0.0)
    for key in ("batch_size", "batch_length"):
        kwargs[key] = _number(data.get(key), f"{where}.{key}", int, 1, allow_none=True)
    for key in _INT_FIELDS:
        default = 1 if key == "every" else 0
        kwargs[key] = _number(
            data.get(key, default), f"{where}.{key}", int, 1 if key == "every" else 0
        )
    if kwargs["anneal"] and kwargs["total_steps"] < kwargs["warmup"] + kwargs["anneal"]:
        raise ConfigError(
            f"{where}.total_steps must be >= warmup + anneal ({kwargs['warmup']} + "
            f"{kwargs['anneal']}) when anneal is set, got {kwargs['total_steps']}"
        )
    batch = data.get("batch")
    if batch is not None and not isinstance(batch, str):
        raise ConfigError(f"{where}.batch must be the name of an earlier phase, got {batch!r}")
    kwargs["batch"] = batch
    if batch is not None:
        own = [k for k in ("batch_size", "batch_length") if kwargs[k] is not None]
        if own or kwargs["burn_in"]:
            raise ConfigError(
                f"{where} trains on phase {batch!r}'s batch, so it cannot set "
                f"{(own or ['burn_in'])[0]}"
            )
    return Phase(**kwargs)


def parse_phases(node: Any, config: Any = None) -> tuple[Phase, ...]:
    """Validate a ``phases:`` block (a list of phases with ``name`` or a name -> phase mapping).

    Args:
        node: the block; ``None`` or empty means the family declares no phases.
        config: the family config that ``config.<field>`` references are read from.

    Raises:
        ConfigError: naming the phase and field at fault.
    """
    if not node:
        return ()
    items: Iterable[tuple[str, Any]]
    if isinstance(node, Mapping):
        items = [(str(k), v) for k, v in node.items()]
    elif isinstance(node, Sequence) and not isinstance(node, str):
        items = []
        for i, phase in enumerate(node):
            if not isinstance(phase, Mapping) or not isinstance(phase.get("name"), str):
                raise ConfigError(f"phases[{i}] must be a mapping with a string 'name'")
            items.append((phase["name"], {k: v for k, v in phase.items() if k != "name"}))
    else:
        raise ConfigError(f"phases must be a list or a mapping, got {node!r}")
    phases: list[Phase] = []
    for name, phase_node in items:
        if any(p.name == name for p in phases):
            raise ConfigError(f"phase name {name!r} is used twice")
        phase = parse_phase(name, phase_node, config)
        if phase.batch is not None:
            earlier = [p.name for p in phases]
            if phase.batch not in earlier:
                raise ConfigError(
                    f"phases.{name}.batch must name an earlier phase, got {phase.batch!r}; "
                    f"earlier phases: {earlier}"
                )
        phases.append(phase)
    return tuple(phases)


class Schedule:
    """Which phases run in each update, and which of them sample their own batch."""

    def __init__(self, phases: Sequence[Phase]) -> None:
        self.phases = tuple(phases)
        self.by_name = {p.name: p for p in self.phases}

    def __bool__(self) -> bool:
        return bool(self.phases)

    def due(self, update: int, env_steps: int = 2**62) -> list[Phase]:
        """The phases of update ``update`` (0-based), in declaration order.

        A phase that trains on another phase's batch runs only when that phase runs too.
        """
        out: list[Phase] = []
        for phase in self.phases:
            if not phase.due(update, env_steps):
                continue
            if phase.batch is not None and phase.batch not in {p.name for p in out}:
                continue
            out.append(phase)
        return out

    def sampled(self, update: int, env_steps: int = 2**62) -> list[Phase]:
        """The due phases that need a batch of their own."""
        return [p for p in self.due(update, env_steps) if p.batch is None]

    def batch_shapes(self, default: tuple[int, int]) -> dict[str, tuple[int, int]]:
        """``{phase: (B, T + burn_in)}`` for each phase that samples, given the default shape."""
        b, t = default
        return {
            p.name: (p.batch_size or b, p.sequence_length(t))
            for p in self.phases
            if p.batch is None
        }
