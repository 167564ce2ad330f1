"""Logger factories for the ``logger`` config group (``_target_`` must live under ``worldflux.``).

Each takes the run directory as ``save_dir`` (passed by the train app) and returns a Lightning
logger writing under it. Logs are append-only across resumes: rerunning a run's command adds to
its TensorBoard events and to its ``metrics.csv`` instead of replacing them.

W&B and MLflow are optional extras (``pip install 'worldflux[wandb]'`` / ``'worldflux[mlflow]'``);
choosing one that is not installed raises :class:`~worldflux.errors.ConfigError` naming the extra.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import Any

from worldflux.errors import ConfigError


def _require(module: str, extra: str, logger: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"logger={logger} needs the {module!r} package: pip install 'worldflux[{extra}]'"
        )


def tensorboard(save_dir: str, name: str = "tensorboard", **kwargs: Any) -> Any:
    """TensorBoard scalars, images, videos and the hparams tab in ``<save_dir>/<name>``."""
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(
        save_dir=save_dir, name=name, version="", default_hp_metric=False, **kwargs
    )


def csv(save_dir: str, name: str = "csv", **kwargs: Any) -> Any:
    """A ``metrics.csv`` file in ``<save_dir>/<name>``, appended to when a run resumes."""
    from worldflux.training.csv_logger import AppendingCSVLogger

    return AppendingCSVLogger(save_dir=save_dir, name=name, version="", **kwargs)


def wandb(save_dir: str, project: str = "worldflux", **kwargs: Any) -> Any:
    """Weights & Biases (``pip install 'worldflux[wandb]'``); ``WANDB_MODE=offline`` works too."""
    _require("wandb", "wandb", "wandb")
    from lightning.pytorch.loggers import WandbLogger

    return WandbLogger(save_dir=save_dir, project=project, **kwargs)


def mlflow(
    save_dir: str,
    experiment_name: str = "worldflux",
    tracking_uri: str | None = None,
    **kwargs: Any,
) -> Any:
    """MLflow (``pip install 'worldflux[mlflow]'``).

    Args:
        save_dir: the run directory; without ``tracking_uri`` runs are stored in
            ``<save_dir>/mlruns`` (a local file store).
        experiment_name: the MLflow experiment.
        tracking_uri: an MLflow server or store (``MLFLOW_TRACKING_URI`` when unset).
    """
    _require("mlflow", "mlflow", "mlflow")
    from lightning.pytorch.loggers import MLFlowLogger

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri is None:
        uri = "file:" + os.path.join(os.path.abspath(save_dir), "mlruns")
    return MLFlowLogger(experiment_name=experiment_name, tracking_uri=uri, **kwargs)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``; lists and ``None`` become strings (hparams take scalars)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}/"))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = str(value)
    return out


def log_final(loggers: list[Any], config: Mapping[str, Any], metrics: Mapping[str, Any]) -> None:
    """Record the run's config with its final metrics (TensorBoard's hparams tab).

    TensorBoard only fills its hyperparameter table when the hyperparameters are written together
    with metric values, so this runs once, when training ends.
    """
    from lightning.pytorch.loggers import TensorBoardLogger

    finals = {f"final/{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    if not finals:
        return
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(flatten(config), metrics=finals)
            logger.save()


class _DropAdverts:
    """A logging filter dropping Lightning's product tips ("💡 Tip: ... try installing ...")."""

    @staticmethod
    def filter(record: Any) -> bool:
        return "Tip:" not in str(record.getMessage())


def quiet_console() -> None:
    """Print Lightning's INFO lines once, without adverts or a known deprecation warning.

    Lightning attaches its own console handler to the ``lightning.pytorch`` logger, and Hydra's
    root handler prints the same records again (once with Hydra's format, in ``train.log`` as
    well); Lightning's handler is removed so each line appears once, in Hydra's format.
    """
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        log = logging.getLogger(name)
        for handler in list(log.handlers):
            if type(handler) is logging.StreamHandler:
                log.removeHandler(handler)
        if not any(isinstance(f, _DropAdverts) for f in log.filters):
            log.addFilter(_DropAdverts())
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropAdverts) for f in rank_zero.filters):
        rank_zero.addFilter(_DropAdverts())
    # Lightning 2.6 with torch >= 2.9 warns about its own use of torch's pytree API.
    warnings.filterwarnings("ignore", message=r".*LeafSpec.* is deprecated")
