"""Validate the composed configs of the three CLIs before anything is built.

``python -m worldflux.train``, ``worldflux.eval`` and ``worldflux.collect`` call
:func:`validate_config` right after Hydra composes their config. Each known key has a rule (type
and range); a violation raises one :class:`~worldflux.errors.ConfigError` naming the key, the
expected value and what was given, which each CLI prints as one ``error: ...`` line. Values are
never coerced: ``seed=1.5``, ``seed=true`` and ``seed=abc`` are refused, not rounded or parsed.
Model configs are validated by their family's typed schema, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from worldflux.errors import ConfigError

DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class Rule:
    """What one config key accepts.

    Args:
        expected: the expectation in words, used in the error message.
        accepts: returns whether a (non-null) value is acceptable.
        nullable: whether ``null`` is allowed.
        required: whether the key must be set (``???`` or absent is an error).
        hint: how to set a required key, appended to its "missing" error.
    """

    expected: str
    accepts: Callable[[Any], bool]
    nullable: bool = False
    required: bool = True
    hint: str = ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(minimum: int, nullable: bool = False, required: bool = True) -> Rule:
    """An integer ``>= minimum`` (never a float, bool or string)."""
    return Rule(
        f"an integer >= {minimum}" + (" or null" if nullable else ""),
        lambda v: _is_int(v) and v >= minimum,
        nullable,
        required,
    )


def positive_number(nullable: bool = False, required: bool = True) -> Rule:
    """An int or float ``> 0`` (never a bool or string)."""
    return Rule(
        "a number > 0" + (" or null" if nullable else ""),
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v > 0,
        nullable,
        required,
    )


def choice(options: tuple[str, ...], required: bool = True) -> Rule:
    """One of ``options``."""
    return Rule(f"one of {', '.join(options)}", lambda v: v in options, required=required)


def boolean(required: bool = True) -> Rule:
    """``true`` or ``false``."""
    return Rule("true or false", lambda v: isinstance(v, bool), required=required)


def text(hint: str = "", nullable: bool = False, required: bool = True) -> Rule:
    """A non-empty string."""
    return Rule(
        "a non-empty string" + (" or null" if nullable else ""),
        lambda v: isinstance(v, str) and bool(v),
        nullable,
        required,
        hint,
    )


SEED = integer(0)
COMMON: dict[str, Rule] = {"seed": SEED, "device": choice(DEVICES)}
ENV: dict[str, Rule] = {"env.num_envs": integer(1, required=False)}

TRAIN: dict[str, Rule] = {
    **COMMON,
    **ENV,
    "threads": integer(1, nullable=True, required=False),
    "compile": boolean(required=False),
    "export": boolean(required=False),
    "data.kind": choice(("online", "offline")),
    "data.batch_size": integer(1, nullable=True, required=False),
    "data.batch_length": integer(1, nullable=True, required=False),
}
ONLINE: dict[str, Rule] = {
    "data.train_ratio": positive_number(nullable=True, required=False),
    "data.prefill": integer(0),
    "data.env_steps": integer(1),
    "data.capacity": integer(1),
}
OFFLINE: dict[str, Rule] = {
    "data.path": text("data=offline needs data.path=<dataset directory>"),
    "data.updates": integer(1),
}
EVAL: dict[str, Rule] = {
    **COMMON,
    **ENV,
    "checkpoint": text("eval needs checkpoint=<run dir | export dir | .ckpt>"),
    "episodes": integer(1),
    "fps": integer(1, required=False),
    "video": boolean(required=False),
}
COLLECT: dict[str, Rule] = {
    **COMMON,
    **ENV,
    "episodes": integer(1),
    "policy": text("policy=random or a trained model (export dir, run dir or .ckpt)"),
    "eval_mode": boolean(required=False),
    "path": text("path=<dataset directory>"),
}
#: Sections whose interval keys (``every``, ``every_n_*``, ``*_every``) must be positive; the
#: user's keys come first because the callbacks interpolate them.
INTERVAL_SECTIONS = ("eval", "checkpoint", "callbacks")
#: Counts in those sections that must be positive when set (evaluation episodes, kept files).
COUNT_KEYS = ("episodes", "keep_last")


def _value(cfg: DictConfig, key: str) -> tuple[bool, Any]:
    """``(present, value)`` of a dotted key; ``???`` counts as absent."""
    node: Any = cfg
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, DictConfig) or part not in node:
            return False, None
        if OmegaConf.is_missing(node, part):
            return False, None
        try:
            node = node[part]
        except OmegaConfBaseException as err:
            raise ConfigError(f"{'.'.join(parts[: i + 1])}: {err}".splitlines()[0]) from None
    return True, node


def check(cfg: DictConfig, rules: Mapping[str, Rule]) -> None:
    """Raise :class:`ConfigError` for the first key of ``cfg`` that breaks its rule."""
    for key, rule in rules.items():
        present, value = _value(cfg, key)
        if not present:
            if rule.required:
                hint = f" ({rule.hint})" if rule.hint else ""
                raise ConfigError(f"{key} is required: expected {rule.expected}{hint}")
            continue
        if value is None and rule.nullable:
            continue
        if value is None or not rule.accepts(value):
            shown = "null" if value is None else f"{value!r} ({type(value).__name__})"
            raise ConfigError(f"{key}={shown} is invalid: expected {rule.expected}")


def interval_rules(cfg: DictConfig) -> dict[str, Rule]:
    """Rules for every ``every*`` key and :data:`COUNT_KEYS` under :data:`INTERVAL_SECTIONS`.

    A checkpoint or evaluation interval of 0 or less would silently turn the feature off (or
    divide by zero); remove a callback with ``~callbacks.<name>`` instead.
    """
    rules: dict[str, Rule] = {}

    def walk(node: Any, prefix: str) -> None:
        if not isinstance(node, DictConfig):
            return
        for key in node:
            name = f"{prefix}.{key}"
            if OmegaConf.is_missing(node, key):
                continue
            if key == "every" or str(key).startswith("every_") or str(key).endswith("_every"):
                # null turns an interval off explicitly; 0 or less is a mistake, never "off"
                seconds = "second" in str(key)
                rules[name] = (
                    positive_number(nullable=True, required=False)
                    if seconds
                    else integer(1, nullable=True, required=False)
                )
            elif key == "keep_last":  # 0: only last.ckpt
                rules[name] = integer(0, nullable=True, required=False)
            elif key in COUNT_KEYS:
                rules[name] = integer(1, nullable=True, required=False)
            else:
                walk(node._get_node(key), name)  # unresolved: interpolations resolve in check()

    for section in INTERVAL_SECTIONS:
        if section in cfg and isinstance(cfg._get_node(section), DictConfig):
            walk(cfg._get_node(section), section)
    return rules


def validate_config(cfg: DictConfig, app: str) -> None:
    """Check the composed config of ``app`` (``train``, ``eval`` or ``collect``).

    Raises:
        ConfigError: the first invalid value, naming the key and the expected value.
    """
    if app == "train":
        rules = dict(TRAIN)
        kind = _value(cfg, "data.kind")[1]
        rules.update(OFFLINE if kind == "offline" else ONLINE if kind == "online" else {})
    elif app == "eval":
        rules = dict(EVAL)
    elif app == "collect":
        rules = dict(COLLECT)
    else:
        raise ValueError(f"unknown app {app!r}; expected train, eval or collect")
    check(cfg, rules)
    check(cfg, interval_rules(cfg))
