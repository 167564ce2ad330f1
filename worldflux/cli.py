"""What every worldflux command-line app (train, eval, collect) does around its work.

``run_cli(fn, cfg, ...)`` applies the user's ``allow_targets`` from the run config to the
instantiation gate, then runs ``fn``; a :class:`~worldflux.errors.WorldFluxError` becomes one
``error: ...`` line on stderr and exit status 2, never a traceback. Use it inside the Hydra
task function::

    @hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="eval")
    def _app(cfg: DictConfig) -> None:
        run_cli(evaluate, cfg, out_dir)

The module also holds what the entry points do around Hydra: a close-match suggestion for a
misspelled key (Hydra alone says "Key 'env_step' is not in struct"), a ``--help`` that lists models
rather than component files, and removal of run directories a failed run left empty.
"""

from __future__ import annotations

import difflib
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from worldflux.errors import WorldFluxError

T = TypeVar("T")
#: Exit status of a run stopped by a clear error (Hydra's own usage errors use 1).
EXIT_ERROR = 2


def run_cli(
    fn: Callable[..., T], cfg: Any, *args: Any, run_dir: Path | None = None, **kwargs: Any
) -> T:
    """Run ``fn(cfg, *args, **kwargs)`` as a command-line app.

    Args:
        fn: the app's work, e.g. ``train`` or ``evaluate``.
        cfg: the user's run config (composed from their command line and files). Its
            ``allow_targets`` list (e.g. ``[mypkg.]``) is added to the instantiation gate; this
            is the only config whose prefixes count, files loaded later never add any.
        *args: further positional arguments of ``fn``.
        run_dir: the run directory; removed when the run fails before writing anything but
            Hydra's own files (see :func:`remove_if_empty`).
        **kwargs: keyword arguments of ``fn``.

    Returns:
        What ``fn`` returns.
    """
    try:
        apply_run_config(cfg)
        return fn(cfg, *args, **kwargs)
    except WorldFluxError as err:
        if run_dir is not None:
            remove_if_empty(run_dir)
        fail(err)
    except BaseException:
        if run_dir is not None:
            remove_if_empty(run_dir)
        raise


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


#: What Hydra itself writes into a run directory before the job does anything.
_HYDRA_ONLY = {".hydra", "train.log", "eval.log", "collect.log"}


def _groups(conf: Path) -> set[str]:
    return {p.name for p in conf.iterdir() if p.is_dir()}


def _keys(tree: Any, prefix: str = "") -> list[str]:
    from omegaconf import DictConfig, OmegaConf

    out = []
    for key in tree.keys() if isinstance(tree, DictConfig) else []:
        name = f"{prefix}{key}"
        out.append(name)
        node = tree._get_node(key)
        if OmegaConf.is_dict(node):
            out.extend(_keys(node, f"{name}."))
    return out


def _plain_key(arg: str) -> str | None:
    """The dotted key an ``a.b=value`` override sets, or ``None`` for anything else."""
    key, sep, value = arg.partition("=")
    if not sep or arg.startswith("-") or key[:1] in "+~" or "/" in key or "@" in key:
        return None
    if key.startswith("hydra.") or key == "hydra" or "," in value or "(" in value:
        return None  # Hydra's own options and sweeps: left to Hydra
    return key


def unknown_override(argv: Iterable[str], config_name: str = "train") -> str | None:
    """A message naming the first override whose key does not exist, with close matches.

    Returns ``None`` when every plain ``key=value`` override names an existing key (or when the
    config cannot be composed for another reason, which Hydra then reports itself).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from worldflux.catalog import conf_dir

    args = list(argv)
    conf = conf_dir()
    groups = _groups(conf)
    choices = [a for a in args if (k := _plain_key(a)) is not None and k in groups]
    keys = [k for a in args if (k := _plain_key(a)) is not None and k not in groups]
    if not keys:
        return None
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(conf), version_base="1.3"):
            cfg = compose(config_name, overrides=choices)
    except Exception:  # noqa: BLE001 - a bad group choice: Hydra's own message names it
        return None
    finally:
        GlobalHydra.instance().clear()
    known = _keys(cfg)
    for key in keys:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent, throw_on_missing=False) if parent else cfg
        # keys() also lists mandatory (???) values, which `in` and select() treat as absent
        if not OmegaConf.is_dict(node) or leaf not in list(node.keys()):
            close = difflib.get_close_matches(key, known + sorted(groups), n=3, cutoff=0.6)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            parent = key.rpartition(".")[0]
            where = f" under {parent!r}" if parent else ""
            return (
                f"unknown config key {key!r}{where}.{hint} "
                f"(add a new key with +{key}=..., list keys with --cfg job)"
            )
    return None


def help_text(app: str = "worldflux.train", config_name: str = "train") -> str:
    """``--help`` of an entry point: the config groups with their options, and the models."""
    from worldflux import catalog

    conf = catalog.conf_dir()
    lines = [
        f"python -m {app} [key=value ...] [group=option ...] [-m for sweeps]",
        "",
        f"Config: conf/{config_name}.yaml. Print the composed config with --cfg job; Hydra's own",
        "options with --hydra-help. Docs: docs/training.md.",
        "",
    ]
    if config_name == "train":
        ids = catalog.list_models(surface="public")
        alias = sorted(catalog.aliases())
        lines += [
            "model (a preset as family/variant or family:variant, or an alias):",
            "  " + ", ".join(catalog.id_to_path(i) for i in ids),
            "  aliases: " + ", ".join(alias),
            "",
        ]
    for group in sorted(_groups(conf) - {"model"}):
        options = sorted(
            str(p.relative_to(conf / group).with_suffix("")) for p in (conf / group).rglob("*.yaml")
        )
        lines.append(f"{group}: {', '.join(options)}")
    return "\n".join(lines)


def remove_if_empty(run_dir: Path) -> bool:
    """Delete ``run_dir`` when it holds nothing but what Hydra wrote (a run that failed early).

    A directory with checkpoints, logs or anything else a run produced is kept.
    """
    if not run_dir.is_dir() or not {p.name for p in run_dir.iterdir()} <= _HYDRA_ONLY:
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return True
