"""Strict checks of config values: types without silent coercion, and numeric ranges.

OmegaConf converts what it can (``"8"`` into an ``int`` field becomes ``8``, ``"true"`` a bool),
and ``int(s) for s in "64"`` turns a string into ``[6, 4]``. A config field given the wrong type is
a mistake the user should hear about, so every value is checked against its dataclass annotation
*before* OmegaConf sees it. This module imports neither torch nor lightning.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from worldflux.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """A numeric interval a config value must lie in (bounds ``None`` are unbounded).

    Attributes:
        low, high: the bounds.
        low_open, high_open: exclude the bound itself (``(0, 1]`` is ``low_open=True``).
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the interval (NaN never does)."""
        if isinstance(value, float) and math.isnan(value):
            return False
        below = self.low is not None and (value < self.low or (self.low_open and value == self.low))
        above = self.high is not None and (
            value > self.high or (self.high_open and value == self.high)
        )
        return not (below or above)

    def __str__(self) -> str:
        if self.high is None and self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None and self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"{'(' if self.low_open else '['}{lo}, {hi}{')' if self.high_open else ']'}"


#: Common ranges, named for reading.
POSITIVE_INT = Range(1)
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, low_open=True)
UNIT = Range(0, 1)
UNIT_OPEN_LOW = Range(0, 1, low_open=True)
UNIT_OPEN_HIGH = Range(0, 1, high_open=True)


def is_number(value: Any) -> bool:
    """``int`` or ``float`` but not ``bool`` (a bool is an int to Python, never to a config)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_range(where: str, value: Any, rng: Range) -> None:
    """Raise :class:`ConfigError` naming ``where`` unless ``value`` is a number in ``rng``.

    A list value has every element checked (``mults: [2, 3, 4]``).
    """
    values = value if isinstance(value, (list, tuple)) else [value]
    for item in values:
        if not is_number(item):
            raise ConfigError(
                f"{where} must be a number in {rng}, got {value!r} ({type(value).__name__})"
            )
        if not rng.contains(item):
            raise ConfigError(f"{where} must be {_phrase(rng)}, got {value!r}")


def _phrase(rng: Range) -> str:
    text = str(rng)
    return text if text[0] in "<>" else f"in {text}"


@functools.cache
def field_hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of the dataclass fields of ``cls`` (ClassVars excluded)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def describe(hint: Any) -> str:
    """A readable name of a type annotation (``list[int]``, ``float or None``)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "None"
    if origin is not None:
        args = ", ".join(describe(a) for a in typing.get_args(hint))
        return f"{origin.__name__}[{args}]"
    return "any value" if hint is Any else getattr(hint, "__name__", str(hint))


def matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the type ``hint`` exactly (ints are floats, bools are not ints)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return is_number(value)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple) or hint in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            return False
        return not args or all(matches(v, args[0]) for v in value)
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            return False
        if not args:
            return True
        return all(matches(k, args[0]) and matches(v, args[1]) for k, v in value.items())
    return True  # other annotations are left to OmegaConf's own validation


def check_types(cls: type, data: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for the first value of ``data`` that does not match its field.

    Missing keys are fine (the default applies); unknown keys are reported elsewhere.
    """
    for name, hint in field_hints(cls).items():
        if name not in data:
            continue
        value = data[name]
        if not matches(value, hint):
            raise ConfigError(
                f"config field {name!r} of {cls.__name__} must be {describe(hint)}, got "
                f"{value!r} ({type(value).__name__}); values are never converted"
            )
