"""The one instantiation gate.

Every ``_target_`` in worldflux is resolved here, and only targets under an allowed import prefix
are admitted. A config read from disk (a saved model, a checkpoint, a user YAML) therefore cannot
name an arbitrary callable such as ``os.system``.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from typing import Any

from worldflux.errors import UnsafeTargetError

#: Import prefixes a ``_target_`` may start with.
ALLOWED_PREFIXES: tuple[str, ...] = ("worldflux.", "torch.nn.", "torch.optim.")

_RESERVED = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")


def check_target(path: str) -> str:
    """Return ``path`` if it is under an allowed prefix, else raise :class:`UnsafeTargetError`."""
    if not isinstance(path, str) or not path:
        raise UnsafeTargetError(f"_target_ must be a non-empty import path, got {path!r}")
    if not any(path.startswith(p) for p in ALLOWED_PREFIXES) or ".." in path:
        raise UnsafeTargetError(
            f"refusing _target_ {path!r}: only targets under {ALLOWED_PREFIXES} may be built "
            "from a config"
        )
    return path


def resolve_target(path: str) -> Any:
    """Import and return the object named by an allowed ``_target_`` path."""
    check_target(path)
    module_name, _, attr = path.rpartition(".")
    while module_name:
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError:
            module_name, _, head = module_name.rpartition(".")
            attr = f"{head}.{attr}"
            continue
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj
    raise UnsafeTargetError(f"cannot import _target_ {path!r}")


def instantiate(node: Mapping[str, Any], /, **kwargs: Any) -> Any:
    """Build the object a ``_target_`` node describes.

    Args:
        node: mapping with ``_target_`` and constructor arguments; ``_partial_: true`` returns a
            :func:`functools.partial` instead of calling. Nested nodes are not instantiated:
            the built object receives them as plain data.
        **kwargs: call-site arguments (runtime facts such as input sizes); they win over ``node``.
    """
    if "_target_" not in node:
        raise UnsafeTargetError(f"component node has no _target_: {dict(node)!r}")
    target = resolve_target(node["_target_"])
    args = {k: v for k, v in node.items() if k not in _RESERVED}
    args.update(kwargs)
    if node.get("_partial_", False):
        return functools.partial(target, **args)
    return target(**args)
