"""The worldflux error hierarchy.

Every error the library raises on purpose derives from :class:`WorldFluxError`. Errors that the
factory reference documents as ``ValueError`` are also ``ValueError`` subclasses, so both
``except WorldFluxError`` and ``except ValueError`` catch them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class WorldFluxError(Exception):
    """Base class of every error raised by worldflux."""


class UnknownModelError(WorldFluxError, ValueError):
    """A model name is neither a preset id, an alias, nor a local path."""


class ConfigError(WorldFluxError, ValueError):
    """A configuration key, value or type is invalid."""


class ComponentError(WorldFluxError, ValueError):
    """A component slot or component id is unknown, or a component cannot be installed."""


class ShapeError(WorldFluxError, ValueError):
    """A tensor has the wrong shape, dtype or range."""


class UnsupportedOperationError(WorldFluxError, NotImplementedError):
    """A family does not support the requested operation (e.g. ``act`` on a pure dynamics model)."""


class UnsafeTargetError(WorldFluxError, ValueError):
    """A ``_target_`` that is neither a registered component nor under a user-allowed prefix."""


class BackendError(WorldFluxError, RuntimeError):
    """A delegated (official) backend cannot be launched."""


class ModelFileError(WorldFluxError, ValueError):
    """A saved model, checkpoint or run file is missing, unreadable, corrupt or does not fit.

    Attributes:
        path: the offending file.
        reason: what is wrong with it.
    """

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return a " Did you mean ...?" suffix listing close matches of ``name`` (or '')."""
    matches = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    if not matches:
        return ""
    return " Did you mean " + ", ".join(repr(m) for m in matches) + "?"
