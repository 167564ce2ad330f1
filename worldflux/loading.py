"""Loading saved models, checkpoints and run configs as data.

Everything read here is untrusted: a model directory or a run downloaded from someone else must
not be able to run code. So YAML is read with the safe loader and never resolved (no
``${...}`` interpolation), weights come from safetensors or ``torch.load(weights_only=True)``,
every ``_target_`` in a loaded config passes the instantiation gate
(:mod:`worldflux.core.instantiate`) without adding to it, and a loaded environment config may
name only a registered suite and an environment id without ``module:`` import syntax.

Every problem with a file (missing, unreadable, malformed, a checksum that does not match,
weights that do not fit the config) is one :class:`~worldflux.errors.ModelFileError` naming the
file and what is wrong. See ``docs/security.md``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from worldflux.errors import ModelFileError, UnsafeTargetError, WorldFluxError

#: Keys a loaded config may not use: they change how a node is called, not what it holds.
_CALL_KEYS = ("_partial_", "_args_")
#: How many key names an error lists per category.
_SHOWN = 5
#: Largest YAML/JSON file loading reads (saved configs are a few KiB).
MAX_TEXT_BYTES = 16 * 1024 * 1024


# ---------------------------------------------------------------------------- readers
def read_yaml(path: Path) -> Any:
    """Parse a YAML file with the safe loader (no Python tags, no aliases, no interpolation)."""
    import yaml

    try:
        return yaml.load(_read_text(path), Loader=_loader())  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as err:
        raise ModelFileError(path, f"malformed YAML ({_one_line(err)})") from None
    except RecursionError:
        raise ModelFileError(path, "malformed YAML (nested too deeply)") from None


def _loader() -> type:
    import yaml

    class StrictSafeLoader(yaml.SafeLoader):
        """The safe loader without aliases: ``*ref`` chains can expand to billions of nodes."""

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.events.AliasEvent):
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, "aliases (*name) are not allowed in saved files", mark
                )
            return super().compose_node(parent, index)

    return StrictSafeLoader


def read_json(path: Path) -> Any:
    """Parse a JSON file."""
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise ModelFileError(path, f"malformed JSON ({err})") from None
    except RecursionError:
        raise ModelFileError(path, "malformed JSON (nested too deeply)") from None


def _read_text(path: Path) -> str:
    _regular_file(path, "file")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_TEXT_BYTES + 1)
        if len(raw) > MAX_TEXT_BYTES:
            raise ModelFileError(path, f"larger than {MAX_TEXT_BYTES} bytes; not a saved config")
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ModelFileError(path, f"cannot read the file ({err})") from None


def _regular_file(path: Path, what: str) -> None:
    """Refuse missing files and devices, FIFOs or directories (``/dev/zero`` never ends)."""
    if not path.exists():
        raise ModelFileError(path, f"{what} is missing")
    if not path.is_file():
        raise ModelFileError(path, f"{what} is not a regular file")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_safetensors(path: Path, expected_sha256: str | None) -> dict[str, Any]:
    """Read a safetensors weight file, after checking its SHA-256 when one is recorded."""
    from safetensors.torch import load_file

    _regular_file(path, "weight file")
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise ModelFileError(
                path,
                f"checksum mismatch: the file's SHA-256 is {actual[:16]}..., metadata.json "
                f"records {expected_sha256[:16]}...; the weights are corrupt or were modified",
            )
    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises several types for bad files
        raise ModelFileError(path, f"not a readable safetensors file ({_one_line(err)})") from None


def read_checkpoint(path: Path) -> Mapping[str, Any]:
    """Read a Lightning checkpoint with ``torch.load(weights_only=True)`` (no pickled code)."""
    import torch

    _regular_file(path, "checkpoint file")
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - garbage bytes reach the legacy unpickler, which
        # raises KeyError, IndexError, struct.error, UnicodeDecodeError... besides UnpicklingError
        raise ModelFileError(
            path, f"not a readable weights-only checkpoint ({_one_line(err)})"
        ) from None
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("state_dict"), Mapping):
        raise ModelFileError(path, "not a worldflux checkpoint (no state_dict)")
    hparams = ckpt.get("hyper_parameters")
    if not isinstance(hparams, Mapping) or not isinstance(hparams.get("config"), Mapping):
        raise ModelFileError(path, "not a worldflux checkpoint (no config hyperparameters)")
    return ckpt


@contextlib.contextmanager
def checkpoint_errors(path: object) -> Iterator[None]:
    """Turn the errors of reading a checkpoint (Lightning's loader) into :class:`ModelFileError`."""
    import pickle

    try:
        yield
    except ModelFileError:
        raise
    except UnsafeTargetError as err:
        raise UnsafeTargetError(f"{path}: {err}") from None
    except WorldFluxError as err:
        raise ModelFileError(path, f"invalid saved config: {err}") from None
    except FileNotFoundError:
        raise ModelFileError(path, "checkpoint file is missing") from None
    except (pickle.UnpicklingError, EOFError) as err:
        raise ModelFileError(
            path, f"not a readable weights-only checkpoint ({_one_line(err)})"
        ) from None
    except (RuntimeError, KeyError, TypeError, ValueError, OSError) as err:
        raise ModelFileError(path, f"cannot load the checkpoint ({_one_line(err)})") from err


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 300 else text[:297] + "..."


# ---------------------------------------------------------------------------- config checks
def check_loaded_data(data: Any, path: Path, where: str = "") -> None:
    """Refuse what would make loaded data act: interpolations, call keys, refused targets.

    Raises:
        ModelFileError: an interpolation or a ``_partial_``/``_args_`` key.
        UnsafeTargetError: a ``_target_`` the gate refuses (the message names the file).
    """
    if isinstance(data, Mapping):
        for key, value in data.items():
            at = f"{where}.{key}" if where else str(key)
            if key in _CALL_KEYS:
                raise ModelFileError(path, f"{at}: {key} is not allowed in a saved config")
            if key == "_target_":
                try:
                    from worldflux.core.instantiate import check_target

                    check_target(value)
                except UnsafeTargetError as err:
                    raise UnsafeTargetError(f"{path}: {at}: {err}") from None
            check_loaded_data(value, path, at)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            check_loaded_data(value, path, f"{where}[{i}]")
    elif isinstance(data, str) and "${" in data:
        raise ModelFileError(path, f"{where}: interpolation {data!r} is not allowed in saved data")


def config_from_file(data: Any, path: Path, overrides: Mapping[str, Any]) -> Any:
    """The validated family config of a loaded config mapping (``config.yaml`` or hparams)."""
    from worldflux.config import apply_overrides, config_class
    from worldflux.core.config import structured_to_object
    from worldflux.core.instantiate import resolve_target
    from worldflux.core.model import WorldModel

    if not isinstance(data, Mapping) or "family" not in data or "_target_" not in data:
        raise ModelFileError(path, "the saved config lacks 'family' and '_target_'")
    check_loaded_data(data, path)
    try:
        cls = config_class(str(data["family"]))
        model_cls = resolve_target(data["_target_"])
        if not (isinstance(model_cls, type) and issubclass(model_cls, WorldModel)):
            raise ModelFileError(path, f"_target_ {data['_target_']!r} is not a world model")
        if not issubclass(model_cls.config_class, cls):
            raise ModelFileError(
                path, f"_target_ {data['_target_']!r} is not a {data['family']!r} model"
            )
        plain = {str(k): v for k, v in data.items()}
        apply_overrides(plain, cls, overrides)
        return structured_to_object(cls, plain)
    except (ModelFileError, UnsafeTargetError):
        raise
    except WorldFluxError as err:
        raise ModelFileError(path, f"invalid saved config: {err}") from None


def load_weights(model: Any, state: Mapping[str, Any], path: Path) -> None:
    """``model.load_state_dict(state, strict=True)`` with an error listing what does not fit."""
    import torch

    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and (not isinstance(v, torch.Tensor) or v.shape != own[k].shape)
    ]
    problems = [
        f"{label} ({len(keys)}): {', '.join(keys[:_SHOWN])}{', ...' if len(keys) > _SHOWN else ''}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch (file vs config)", mismatched),
        )
        if keys
    ]
    if problems:
        raise ModelFileError(
            path, "the weights do not fit the saved config: " + "; ".join(problems)
        )
    model.load_state_dict(dict(state), strict=True)


# ---------------------------------------------------------------------------- loaders
def load_directory(path: Path, device: str, overrides: Mapping[str, Any]) -> Any:
    """Load a ``save_pretrained`` directory (config, checksummed weights, metadata)."""
    from worldflux.core import model as core
    from worldflux.factory import build

    meta_path = path / core.METADATA_FILE
    metadata = read_json(meta_path)
    if not isinstance(metadata, Mapping):
        raise ModelFileError(meta_path, "expected a JSON object")
    expected = metadata.get(core.CHECKSUM_KEY)
    if expected is None:
        warnings.warn(
            f"{meta_path} records no weights checksum (saved by an older worldflux); the "
            "weights are loaded unverified",
            stacklevel=3,
        )
    elif not isinstance(expected, str) or len(expected) != 64:
        raise ModelFileError(meta_path, f"{core.CHECKSUM_KEY} must be a SHA-256 hex digest")
    config_path = path / core.CONFIG_FILE
    config = config_from_file(read_yaml(config_path), config_path, overrides)
    weights_path = path / core.WEIGHTS_FILE
    state = read_safetensors(weights_path, expected)
    built = build(config)
    load_weights(built, state, weights_path)
    return built.to(device)


def load_checkpoint(path: Path, device: str, overrides: Mapping[str, Any]) -> Any:
    """Load a Lightning ``.ckpt`` written by worldflux training."""
    from worldflux.factory import build

    ckpt = read_checkpoint(path)
    config = config_from_file(ckpt["hyper_parameters"]["config"], path, overrides)
    built = build(config)
    load_weights(built, ckpt["state_dict"], path)
    return built.to(device)


def load_run_env(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """The environment config of the run a checkpoint belongs to (``.hydra/config.yaml``).

    The file is data from a possibly downloaded run: it is read without resolving anything, and
    its ``env`` may name only a registered suite and an id without ``module:`` syntax (gymnasium
    imports the module before ``:``). Choose an environment with ``env=...`` to go beyond that.

    Raises:
        ModelFileError: no run config, or an env config that is malformed or refused.
    """
    from worldflux.envs.registry import SUITES

    path = Path(checkpoint).expanduser().resolve()
    if not path.exists():
        raise ModelFileError(checkpoint, "no saved model or run directory at this path")
    for parent in [path, *path.parents][:4]:
        saved = parent / ".hydra" / "config.yaml"
        if saved.is_file():
            break
    else:
        raise ModelFileError(
            checkpoint,
            "cannot find the run config (.hydra/config.yaml); name the environment with env=...",
        )
    data = read_yaml(saved)
    env = data.get("env") if isinstance(data, Mapping) else None
    if not isinstance(env, Mapping):
        raise ModelFileError(saved, "has no 'env' mapping; name the environment with env=...")
    check_loaded_data(env, saved, "env")
    if any(k == "_target_" for k in env):
        raise ModelFileError(saved, "env: a saved environment config may not name a _target_")
    suite, env_id = env.get("suite"), env.get("id")
    if suite not in SUITES:
        raise ModelFileError(saved, f"env.suite {suite!r} is not one of {sorted(SUITES)}")
    if not isinstance(env_id, str) or not env_id or ":" in env_id:
        raise ModelFileError(
            saved,
            f"env.id {env_id!r} is refused: a saved run may not name a module to import "
            "('module:Env' ids); pass env=... on the command line if you trust it",
        )
    return {str(k): v for k, v in env.items()}
