"""Atomic checkpoint files, resuming, and exporting (also under FSDP).

Lightning writes checkpoints through a ``CheckpointIO`` plugin; :class:`AtomicCheckpointIO`
writes to a temporary file in the same directory, syncs it and renames it over the target, so a
run killed while saving leaves the previous checkpoint intact.

Under ``trainer=fsdp`` with ``trainer.fsdp.state_dict=full`` the checkpoint is the same single
file (gathered on rank 0). With ``state_dict=sharded`` ``last.ckpt`` is a directory of shards
written by ``torch.distributed.checkpoint`` (not atomic); :func:`consolidate` turns it into one
file that loads in a single process.
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


#: The file Lightning writes next to the shards of a sharded (FSDP) checkpoint directory.
SHARDED_METADATA = "meta.pt"


def is_checkpoint(path: Path) -> bool:
    """A checkpoint file, or a sharded checkpoint directory (FSDP ``state_dict=sharded``)."""
    return path.is_file() or (path.is_dir() and (path / SHARDED_METADATA).is_file())


def resume_path(checkpoint_dir: str | os.PathLike[str], resume: Any) -> str | None:
    """The checkpoint to resume from: ``resume`` is ``auto`` (``last.ckpt`` when present),
    ``never``/``false``, or a path (a run directory, a checkpoint file or a sharded one)."""
    last = Path(checkpoint_dir) / "last.ckpt"
    if resume in (None, False, "never", "false", "False"):
        return None
    if resume in (True, "auto", "true", "True"):
        return str(last) if is_checkpoint(last) else None
    path = Path(str(resume)).expanduser()
    if path.is_dir() and not is_checkpoint(path):
        path = path / "checkpoints" / "last.ckpt"
    if not is_checkpoint(path):
        from worldflux.errors import ConfigError

        raise ConfigError(f"resume={resume!r}: no checkpoint at {path}")
    return str(path)


def export_model(trainer: Any, model: Any, path: Path) -> Path | None:
    """``save_pretrained`` into ``path`` on rank 0; returns the path there, ``None`` elsewhere.

    Every rank must call it: under FSDP the whole state dict is first gathered onto rank 0
    (a collective), loaded into a plain copy of the model on rank 0, and that
    copy is saved, so the export loads in one process like any other.
    """
    from worldflux.training.sharded import whole_model

    if getattr(model, "sharding", None) is None and not trainer.is_global_zero:
        return None
    plain = whole_model(model)
    if plain is None or not trainer.is_global_zero:
        return None
    return plain.save_pretrained(path, model_id=model.model_id)


def consolidate(checkpoint: str | os.PathLike[str], output: str | os.PathLike[str]) -> Path:
    """Write a sharded (FSDP) checkpoint directory as one Lightning checkpoint file.

    The result loads in one process (``Family.load_from_checkpoint(output)``,
    ``python -m worldflux.eval checkpoint=...``); its optimiser states stay keyed by parameter
    name, so resume an FSDP run from the sharded directory itself.

    Raises:
        ModelFileError: ``checkpoint`` is not a sharded checkpoint directory.
    """
    from lightning.fabric.utilities.load import _load_distributed_checkpoint

    from worldflux.errors import ModelFileError

    source = Path(checkpoint)
    if not (source.is_dir() and (source / SHARDED_METADATA).is_file()):
        raise ModelFileError(
            source, f"not a sharded checkpoint directory (no {SHARDED_METADATA} in it)"
        )
    state = _load_distributed_checkpoint(source)  # shards and meta.pt, weights only
    state["state_dict"] = state.pop("model")
    count = sum(1 for k in state if k.startswith("optimizer_"))
    # keyed by parameter name, as FSDP resumes them (a non-FSDP resume needs the sharded run)
    state["optimizer_states"] = [state.pop(f"optimizer_{i}") for i in range(count)]
    out = Path(output)
    AtomicCheckpointIO().save_checkpoint(state, out)
    return out
