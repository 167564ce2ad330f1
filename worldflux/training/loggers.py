"""Logger factories for the ``logger`` config group (``_target_`` must live under ``worldflux.``).

Each takes the run directory as ``save_dir`` (passed by the train app) and returns a Lightning
logger writing under it.
"""

from __future__ import annotations

from typing import Any


def tensorboard(save_dir: str, name: str = "tensorboard", **kwargs: Any) -> Any:
    """TensorBoard scalars (and images) in ``<save_dir>/<name>``."""
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(
        save_dir=save_dir, name=name, version="", default_hp_metric=False, **kwargs
    )


def csv(save_dir: str, name: str = "csv", **kwargs: Any) -> Any:
    """A ``metrics.csv`` file in ``<save_dir>/<name>``."""
    from lightning.pytorch.loggers import CSVLogger

    return CSVLogger(save_dir=save_dir, name=name, version="", **kwargs)


def wandb(save_dir: str, project: str = "worldflux", **kwargs: Any) -> Any:
    """Weights & Biases (needs ``pip install wandb``)."""
    from lightning.pytorch.loggers import WandbLogger

    return WandbLogger(save_dir=save_dir, project=project, **kwargs)
