"""Helpers shared by several test modules."""

from __future__ import annotations

from typing import Any


def quiet_trainer(**kwargs: Any) -> Any:
    """A one-epoch CPU Lightning ``Trainer`` without loggers, checkpoints, bar or model summary.

    Keyword arguments override or add Trainer options (``logger=``, ``callbacks=``, ...).
    """
    import lightning as L

    options: dict[str, Any] = {
        "max_epochs": 1,
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    options.update(kwargs)
    return L.Trainer(**options)
