"""What every worldflux command-line app (train, eval, collect) does around its work.

``run_cli(fn, cfg, ...)`` applies the user's ``allow_targets`` from the run config to the
instantiation gate, then runs ``fn``; a :class:`~worldflux.errors.WorldFluxError` becomes one
``error: ...`` line on stderr and exit status 2, never a traceback. Use it inside the Hydra
task function::

    @hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="eval")
    def _app(cfg: DictConfig) -> None:
        run_cli(evaluate, cfg, out_dir)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from worldflux.errors import WorldFluxError

T = TypeVar("T")
#: Exit status of a run stopped by a clear error (Hydra's own usage errors use 1).
EXIT_ERROR = 2


def run_cli(fn: Callable[..., T], cfg: Any, *args: Any, **kwargs: Any) -> T:
    """Run ``fn(cfg, *args, **kwargs)`` as a command-line app.

    Args:
        fn: the app's work, e.g. ``train`` or ``evaluate``.
        cfg: the user's run config (composed from their command line and files). Its
            ``allow_targets`` list (e.g. ``[mypkg.]``) is added to the instantiation gate; this
            is the only config whose prefixes count, files loaded later never add any.
        *args: further positional arguments of ``fn``.
        **kwargs: keyword arguments of ``fn``.

    Returns:
        What ``fn`` returns.
    """
    try:
        apply_run_config(cfg)
        return fn(cfg, *args, **kwargs)
    except WorldFluxError as err:
        fail(err)


def apply_run_config(cfg: Any) -> None:
    """Add the run config's ``allow_targets`` (a list or comma-separated string) to the gate."""
    from worldflux.core.instantiate import allow_prefixes

    getter = getattr(cfg, "get", None)
    prefixes = getter("allow_targets") if callable(getter) else None
    if prefixes is None:
        return
    if not isinstance(prefixes, str):
        from omegaconf import OmegaConf

        if OmegaConf.is_config(prefixes):
            prefixes = OmegaConf.to_container(prefixes, resolve=True)
    allow_prefixes(prefixes)  # type: ignore[arg-type]


def fail(err: BaseException) -> NoReturn:
    """Print ``error: <message>`` (one line) to stderr and exit with :data:`EXIT_ERROR`."""
    message = " ".join(str(err).split()) or type(err).__name__
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_ERROR)
