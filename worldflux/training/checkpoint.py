"""Atomic checkpoint files and resuming.

Lightning writes checkpoints through a ``CheckpointIO`` plugin; :class:`AtomicCheckpointIO`
writes to a temporary file in the same directory, syncs it and renames it over the target, so a
run killed while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temporary file, ``fsync``, then ``os.replace`` onto the target."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)  # mkstemp creates 0600 files
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def resume_path(checkpoint_dir: str | os.PathLike[str], resume: Any) -> str | None:
    """The checkpoint to resume from: ``resume`` is ``auto`` (``last.ckpt`` when present),
    ``never``/``false``, or a path."""
    last = Path(checkpoint_dir) / "last.ckpt"
    if resume in (None, False, "never", "false", "False"):
        return None
    if resume in (True, "auto", "true", "True"):
        return str(last) if last.is_file() else None
    path = Path(str(resume)).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        from worldflux.errors import ConfigError

        raise ConfigError(f"resume={resume!r}: no checkpoint at {path}")
    return str(path)
