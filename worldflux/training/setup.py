"""Build the pieces of a training run from the composed ``conf/train.yaml`` config.

Every function here validates what it builds, so bad overrides, unknown environments and spaces a
model cannot take fail before the first environment step, with the problem named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from worldflux.core.config import to_plain
from worldflux.envs.base import EnvSpec
from worldflux.errors import ConfigError, WorldFluxError

DEVICES = ("cpu", "cuda", "auto")


def accelerator(device: str) -> str:
    """The Lightning accelerator for ``device`` (``cpu``, ``cuda`` or ``auto``)."""
    import torch

    if device not in DEVICES:
        raise ConfigError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda was requested but torch sees no CUDA device")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return "gpu" if device == "cuda" else "cpu"


def keep_freed_memory() -> bool:
    """Ask glibc to serve large blocks from the heap and never hand them back to the OS.

    By default every tensor above the mmap threshold is a fresh mapping whose pages fault in
    (and are zeroed) on first touch; a DreamerV3 update allocates gigabytes of such short-lived
    activations, so on CPU the page faults cost about a quarter of the update. Returns whether
    the settings were applied (glibc only).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):
        return False


def data_spec(cfg: DictConfig) -> EnvSpec:
    """The spaces training data has: the env's (online) or the dataset's (offline)."""
    if cfg.data.kind == "offline":
        from worldflux.data.episodes import read_spec

        if cfg.data.path in (None, "???"):
            raise ConfigError("data=offline needs data.path=<dataset directory>")
        return read_spec(cfg.data.path)
    from worldflux.envs.registry import env_spec

    return env_spec(cfg.env)


def model_id(cfg: DictConfig) -> str | None:
    """The preset id of the run's model (from Hydra's choice, e.g. ``dreamerv3:size12m``)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        choice = HydraConfig.get().runtime.choices.get("model")
    except ValueError:  # not inside a Hydra app
        return None
    if not choice:
        return None
    from worldflux import catalog

    try:
        return catalog.resolve(catalog.path_to_id(choice))[0]
    except WorldFluxError:
        return catalog.path_to_id(choice)


def build_model(cfg: DictConfig, spec: EnvSpec) -> Any:
    """The family's LightningModule for the environment's spaces."""
    from worldflux.factory import create_world_model

    try:
        model = create_world_model(cfg.model, **spec.model_kwargs())
    except WorldFluxError as err:
        raise ConfigError(
            f"model {model_id(cfg) or cfg.model.get('family')!r} cannot be built for env "
            f"{cfg.env.get('suite')}:{cfg.env.get('id')} with {spec.describe()}: {err}"
        ) from None
    model.model_id = model_id(cfg)
    return model


def train_ratio(cfg: DictConfig, model: Any, batch: tuple[int, int]) -> float:
    """``data.train_ratio``, else the model config's ``train_ratio``, else one update per env step."""
    if cfg.data.get("train_ratio") is not None:
        return float(cfg.data.train_ratio)
    ratio = getattr(model.config, "train_ratio", None)
    return float(ratio) if ratio is not None else float(batch[0] * batch[1])


def build_datamodule(cfg: DictConfig, model: Any, spec: EnvSpec, run_dir: Path) -> Any:
    """The online (environments + replay) or offline (dataset) data module."""
    from worldflux.training.data import OfflineDataModule, OnlineDataModule, batch_shape

    d = cfg.data
    b, t = batch_shape(model, d.get("batch_size"), d.get("batch_length"))
    ckpt_dir = str(run_dir / "checkpoints")
    if d.kind == "offline":
        return OfflineDataModule(
            d.path,
            b,
            t,
            updates=int(d.updates),
            seed=int(cfg.seed),
            checkpoint_dir=ckpt_dir,
            schedule=getattr(model, "schedule", None),
        )
    if d.kind != "online":
        raise ConfigError(f"data.kind must be 'online' or 'offline', got {d.kind!r}")
    return OnlineDataModule(
        to_plain(cfg.env),
        spec,
        b,
        t,
        train_ratio=train_ratio(cfg, model, (b, t)),
        prefill=int(d.prefill),
        env_steps=int(d.env_steps),
        capacity=int(d.capacity),
        directory=d.get("directory"),
        seed=int(cfg.seed),
        checkpoint_dir=ckpt_dir,
        schedule=getattr(model, "schedule", None),
    )


def _instantiate_group(group: Any, **runtime: Any) -> list[Any]:
    from worldflux.core.instantiate import instantiate

    out = []
    for name, node in (group or {}).items():
        if node is None:
            continue
        if not OmegaConf.is_dict(node) or "_target_" not in node:
            raise ConfigError(f"config entry {name!r} needs a _target_, got {node!r}")
        out.append(instantiate(to_plain(node), **runtime))
    return out


CHECKPOINT_OPTIONS = ("every_n_updates", "every_n_seconds", "keep_last")


def checkpoint_callback(node: Any, ckpt_dir: str) -> Any:
    """The :class:`PeriodicCheckpoint` of the ``callbacks.checkpoint`` node (validated)."""
    from worldflux.errors import suggest
    from worldflux.training.callbacks import PeriodicCheckpoint

    options = to_plain(node) if node is not None else {}
    for key in options:
        if key not in CHECKPOINT_OPTIONS:
            raise ConfigError(
                f"unknown option callbacks.checkpoint.{key}.{suggest(key, list(CHECKPOINT_OPTIONS))}"
            )
    return PeriodicCheckpoint(ckpt_dir, **options)


def build_strategy(kwargs: dict[str, Any], model: Any) -> None:
    """Turn ``trainer.strategy=fsdp`` (with its ``trainer.fsdp`` options) into the strategy object.

    The FSDP strategy needs the model (its wrap units), so it is built here rather than by name;
    other strategies pass through as Lightning's strings.
    """
    from worldflux.training.strategy import build_fsdp, fsdp_options

    node = kwargs.pop("fsdp", None)
    if kwargs.get("strategy") != "fsdp":
        return
    if model is None:
        raise ConfigError("trainer.strategy=fsdp needs the model (its wrap units) to build")
    kwargs["strategy"] = build_fsdp(fsdp_options(node), model)


def build_trainer(cfg: DictConfig, run_dir: Path, model: Any = None) -> Any:
    """A Lightning Trainer with the configured callbacks, loggers and atomic checkpoints.

    ``model`` is needed with ``trainer.strategy=fsdp`` (see :func:`build_strategy`).
    """
    import lightning as L

    from worldflux.training.checkpoint import AtomicCheckpointIO

    ckpt_dir = str(run_dir / "checkpoints")
    callbacks = []
    for cb in _instantiate_group(
        {k: v for k, v in (cfg.callbacks or {}).items() if k != "checkpoint"}
    ):
        callbacks.append(cb)
    callbacks.append(checkpoint_callback((cfg.callbacks or {}).get("checkpoint"), ckpt_dir))
    loggers = _instantiate_group(cfg.logger, save_dir=str(run_dir))
    kwargs = to_plain(cfg.trainer)
    assert isinstance(kwargs, dict)
    acc = accelerator(str(cfg.device))
    if kwargs.get("precision") is None:
        kwargs["precision"] = "bf16-mixed" if acc == "gpu" else "32-true"
    kwargs.setdefault("accelerator", acc)
    build_strategy(kwargs, model)
    try:
        return L.Trainer(
            **kwargs,
            callbacks=callbacks,
            logger=loggers or False,
            default_root_dir=str(run_dir),
            plugins=[AtomicCheckpointIO()],
            max_epochs=1,
            enable_checkpointing=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(f"bad trainer option: {err}") from None
