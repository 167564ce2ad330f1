"""The one instantiation gate.

Every ``_target_`` in worldflux is resolved here. A name is admitted only when it is one of the
registered components, spelled exactly:

- a ``worldflux.`` name that a shipped config file uses (every ``_target_`` under ``conf/``) or
  that a family config class uses as a default;
- a Lightning callback class of ``worldflux.training.callbacks``, a logger factory of
  ``worldflux.training.loggers`` or an optimiser of ``worldflux.optim``;
- a ``torch.nn`` module class (``torch.nn.Linear``), a ``torch.optim`` optimiser or a
  ``torch.optim.lr_scheduler`` scheduler, each named by its public one-attribute name;
- a name under a prefix the *user* allowed, in their own run config (``allow_targets:``) or in
  the ``WORLDFLUX_ALLOW_TARGETS`` environment variable (comma-separated). Nothing read from a
  saved model, a checkpoint or a run directory can add a prefix.

A name is split once into ``module`` and ``attribute`` (``pkg.mod.Cls`` or ``pkg.mod:Cls``); the
module is imported and the attribute looked up in its namespace, never followed further, and the
object must be defined in that module (``Cls.__module__ == "pkg.mod"``), so a re-exported
module attribute (``worldflux.backends.subprocess``) or a chain through modules
(``torch.nn.functional.torch.hub.load``) cannot reach anything else. See ``docs/security.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from worldflux.errors import ComponentError, UnsafeTargetError

#: Environment variable with extra user prefixes, e.g. ``mypkg.,other.components.``.
ENV_VAR = "WORLDFLUX_ALLOW_TARGETS"
#: Keys of a ``_target_`` node that are not constructor arguments.
RESERVED = ("_target_", "_partial_", "_recursive_", "_convert_")
#: Kept for older callers: the roots of the built-in names (the gate itself is exact).
ALLOWED_PREFIXES: tuple[str, ...] = ("worldflux.", "torch.nn.", "torch.optim.")

_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*)?$")
_PREFIX = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\.?$")
#: Roots a user prefix may not open: they hold process, file and import machinery, and a
#: checkpoint naming them would then run code. Name your own package instead.
_DENIED_ROOTS = frozenset(
    [
        "builtins",
        "os",
        "posix",
        "nt",
        "subprocess",
        "sys",
        "importlib",
        "shutil",
        "socket",
        "pickle",
        "marshal",
        "ctypes",
        "runpy",
        "code",
        "codeop",
        "pty",
        "multiprocessing",
        "tempfile",
        "pathlib",
        "io",
        "webbrowser",
        "urllib",
        "http",
        "ftplib",
        "smtplib",
        "asyncio",
        "threading",
        "signal",
        "types",
        "inspect",
        "functools",
        "operator",
    ]
)
#: Big packages that may only be opened below their root (``lightning.pytorch.loggers.``).
_NO_BARE_ROOT = frozenset({"torch", "worldflux", "lightning", "pytorch_lightning", "hydra"})
#: Modules whose public objects of one kind are components (module -> kind).
_COMPONENT_MODULES = {
    "worldflux.training.callbacks": "callback",
    "worldflux.training.loggers": "function",
    "worldflux.optim": "optimizer",
    "worldflux.optim.laprop": "optimizer",
}
#: torch modules whose public classes of one kind are components (module -> kind).
_TORCH_MODULES = {
    "torch.nn": "module",
    "torch.optim": "optimizer",
    "torch.optim.lr_scheduler": "scheduler",
}

_user_prefixes: set[str] = set()


# ---------------------------------------------------------------------------- user prefixes
def allow_prefixes(prefixes: Iterable[str] | str | None) -> None:
    """Admit ``_target_`` names under ``prefixes`` for the rest of this process.

    Call this only with the user's own settings (a run config's ``allow_targets``, a command-line
    value); never with anything read from a saved model, a checkpoint or a run directory.

    Args:
        prefixes: package prefixes such as ``"mypkg."`` (a trailing dot is implied), or exact
            names such as ``"mypkg.encoders.MyEncoder"``; a comma-separated string is split.

    Raises:
        UnsafeTargetError: a malformed prefix, a standard-library root that holds process or
            import machinery (``os.``, ``subprocess.``, ...), or a bare ``torch``/``worldflux``.
    """
    if prefixes is None:
        return
    if isinstance(prefixes, str):
        items: list[Any] = prefixes.split(",")
    elif isinstance(prefixes, (list, tuple, set, frozenset)):
        items = list(prefixes)
    else:
        raise UnsafeTargetError(
            f"allow_targets must be a list of package prefixes such as ['mypkg.'], got {prefixes!r}"
        )
    for raw in items:
        _user_prefixes.add(_check_prefix(raw))


def clear_user_prefixes() -> None:
    """Forget the prefixes added with :func:`allow_prefixes` (tests use it)."""
    _user_prefixes.clear()


def user_prefixes() -> tuple[str, ...]:
    """The user prefixes in force: :func:`allow_prefixes` plus ``WORLDFLUX_ALLOW_TARGETS``."""
    env = [p for p in os.environ.get(ENV_VAR, "").split(",") if p.strip()]
    return tuple(sorted(_user_prefixes | {_check_prefix(p, source=ENV_VAR) for p in env}))


def _check_prefix(raw: Any, source: str = "allow_targets") -> str:
    text = raw.strip() if isinstance(raw, str) else raw
    if not isinstance(text, str) or not _PREFIX.match(text):
        raise UnsafeTargetError(
            f"{source}: {raw!r} is not a package prefix; expected e.g. 'mypkg.' or "
            "'mypkg.components.MyEncoder'"
        )
    name = text.rstrip(".")
    root = name.split(".")[0]
    if root in _DENIED_ROOTS or (root in _NO_BARE_ROOT and "." not in name):
        raise UnsafeTargetError(
            f"{source}: refusing prefix {raw!r}: it would admit {root!r}, whose callables can run "
            "arbitrary code; allow your own package (e.g. 'mypkg.') instead"
        )
    return name


# ---------------------------------------------------------------------------- the registry
@functools.lru_cache(maxsize=1)
def shipped_targets() -> frozenset[str]:
    """The exact ``worldflux.`` names used by the shipped ``conf/`` tree and the family configs."""
    import yaml

    from worldflux.catalog import conf_dir
    from worldflux.models import FAMILIES

    names: set[str] = set()
    for path in sorted(conf_dir().rglob("*.yaml")):
        _collect_targets(yaml.safe_load(path.read_text()), names)
    from worldflux.config import config_class

    for family in FAMILIES:
        cls = config_class(family)
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                _collect_targets({f.name: f.default}, names)
            elif f.default_factory is not dataclasses.MISSING:
                _collect_targets({f.name: f.default_factory()}, names)
    return frozenset(n for n in names if n.startswith("worldflux."))


def _collect_targets(node: Any, out: set[str]) -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "_target_" and isinstance(value, str):
                out.add(_canonical(value))
            else:
                _collect_targets(value, out)
    elif isinstance(node, list):
        for value in node:
            _collect_targets(value, out)


def _canonical(path: str) -> str:
    return path.replace(":", ".")


def _split(path: str) -> tuple[str, str]:
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    return module_name, attr


def _kind(path: str) -> str:
    """Why ``path`` is admitted (``shipped``, ``module``, ``torch``, ``user``); else raise."""
    if not isinstance(path, str) or not _NAME.match(path):
        raise UnsafeTargetError(
            f"_target_ must be an import path such as 'package.module.Class', got {path!r}"
        )
    name = _canonical(path)
    module_name, _ = _split(path)
    if name in shipped_targets():
        return "shipped"
    if module_name in _COMPONENT_MODULES:
        return "module"
    if module_name in _TORCH_MODULES and ":" not in path:
        return "torch"
    if any(name == p or name.startswith(p + ".") for p in user_prefixes()):
        return "user"
    raise UnsafeTargetError(
        f"refusing _target_ {path!r}: it is not a registered worldflux component, a torch.nn "
        "module or a torch.optim optimiser. To build your own components, allow your package "
        f"in the run config (allow_targets: [mypkg.]) or with {ENV_VAR}=mypkg. "
        "(see docs/security.md)"
    )


def check_target(path: str) -> str:
    """Return ``path`` if the gate admits the name (without importing it).

    Raises:
        UnsafeTargetError: the name is not registered and not under a user prefix.
    """
    _kind(path)
    return path


def resolve_target(path: str) -> Any:
    """Import and return the object an admitted ``_target_`` names.

    Raises:
        UnsafeTargetError: the name is refused, cannot be imported, or names an object that is
            not defined in the module the name gives (a re-export).
    """
    kind = _kind(path)
    module_name, attr = _split(path)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UnsafeTargetError(
            f"cannot import module {module_name!r} of _target_ {path!r}: {err}"
        ) from None
    # The module namespace only: no module-level __getattr__ hooks, no walking further.
    obj = vars(module).get(attr)
    if obj is None:
        raise UnsafeTargetError(f"_target_ {path!r}: module {module_name!r} has no {attr!r}")
    if kind == "torch":
        _check_torch(path, obj)
        return obj
    if (
        getattr(obj, "__module__", None) != module_name
        or getattr(obj, "__qualname__", None) != attr
    ):
        where = getattr(obj, "__module__", None)
        hint = f"; it is defined in {where!r}" if isinstance(where, str) else ""
        raise UnsafeTargetError(
            f"refusing _target_ {path!r}: it does not name an object defined in {module_name!r}"
            f"{hint} (name components by the module that defines them)"
        )
    if kind == "module":
        _check_component_module(path, obj, _COMPONENT_MODULES[module_name])
    elif not callable(obj) or inspect.ismodule(obj):
        raise UnsafeTargetError(f"_target_ {path!r} is not a class or function")
    return obj


def _check_torch(path: str, obj: Any) -> None:
    import torch

    bases = {
        "module": (torch.nn.Module, "torch.nn.Module"),
        "optimizer": (torch.optim.Optimizer, "torch.optim.Optimizer"),
        "scheduler": (torch.optim.lr_scheduler.LRScheduler, "torch.optim.lr_scheduler.LRScheduler"),
    }
    base, label = bases[_TORCH_MODULES[_split(path)[0]]]
    if not (inspect.isclass(obj) and issubclass(obj, base)):
        raise UnsafeTargetError(
            f"refusing _target_ {path!r}: only {label} classes of {_split(path)[0]} may be built "
            "from a config"
        )


def _check_component_module(path: str, obj: Any, kind: str) -> None:
    ok = False
    if kind == "function":
        ok = inspect.isfunction(obj) and not obj.__name__.startswith("_")
    elif kind == "callback":
        import lightning as L

        ok = inspect.isclass(obj) and issubclass(obj, L.Callback)
    elif kind == "optimizer":
        import torch

        ok = inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer)
    if not ok:
        raise UnsafeTargetError(f"refusing _target_ {path!r}: it is not a worldflux {kind}")


# ---------------------------------------------------------------------------- building
def instantiate(node: Mapping[str, Any], /, **runtime: Any) -> Any:
    """Build the object a ``_target_`` node describes.

    The node's own arguments are always passed; the call-site ``runtime`` arguments (sizes the
    family derives, such as input widths) are offered and passed when the constructor takes them,
    so a component swapped by name receives its own file's arguments plus the sizes it names.

    Args:
        node: mapping with ``_target_`` and constructor arguments; ``_partial_: true`` returns a
            :func:`functools.partial` instead of calling. Nested nodes are not instantiated:
            the built object receives them as plain data.
        **runtime: call-site arguments; they win over ``node``.

    Raises:
        UnsafeTargetError: the target is refused by the gate.
        ComponentError: the arguments do not fit the constructor (named with the target).
    """
    if "_target_" not in node:
        raise ComponentError(f"component node has no _target_: {dict(node)!r}")
    target = resolve_target(node["_target_"])
    partial = node.get("_partial_", False)
    if not isinstance(partial, bool):
        raise ComponentError(f"_partial_ must be true or false, got {partial!r}")
    args = {k: v for k, v in node.items() if k not in RESERVED and k != "_args_"}
    if "_args_" in node:
        raise ComponentError(f"_target_ {node['_target_']!r}: positional _args_ are not supported")
    args.update(accepted_arguments(target, runtime))
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # some builtins have no signature: let the call decide
        signature = None
    if signature is not None:
        try:
            (signature.bind_partial if partial else signature.bind)(**args)
        except TypeError as err:
            raise ComponentError(
                f"cannot build {node['_target_']!r} with arguments {sorted(args)}: {err}"
            ) from None
    if partial:
        return functools.partial(target, **args)
    return target(**args)


def accepted_arguments(target: Any, runtime: Mapping[str, Any]) -> dict[str, Any]:
    """The ``runtime`` arguments ``target`` can take (all of them if it takes ``**kwargs``)."""
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return dict(runtime)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(runtime)
    return {k: v for k, v in runtime.items() if k in params}
