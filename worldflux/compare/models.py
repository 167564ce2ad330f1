"""The models of a comparison: resolved, built for the data's spaces, trained the same budget.

A model entry is a preset id or alias (built fresh for the data's spaces, then trained
``train.updates`` updates on the training episodes), a local path (a ``save_pretrained``
directory, a training run directory or a ``.ckpt``; loaded as is and checked against the data's
spaces), or, from Python, an already built :class:`~worldflux.core.model.WorldModel`.

Training goes through Lightning exactly as ``python -m worldflux.train`` does it offline: the
model's own ``training_step`` and optimisers, batches drawn by the train app's offline data module
(phases with their own batch shapes included), so every family is trained by its own recipe.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worldflux.compare.data import CompareData, check_spaces
from worldflux.errors import ConfigError, WorldFluxError

_RANK_ZERO = "lightning.pytorch.utilities.rank_zero"


@dataclass
class Entry:
    """One model of the comparison.

    Attributes:
        name: how the table names it (the preset id, path or given name).
        model: the built model.
        origin: ``"preset"`` (built and trained here), ``"loaded"`` or ``"given"``.
        updates: training updates run here.
        train_seconds: wall time of those updates (``None`` when none ran).
    """

    name: str
    model: Any
    origin: str
    updates: int = 0
    train_seconds: float | None = None
    peak_mib: float | None = None


def resolve(item: Any, data: CompareData, device: str) -> Entry:
    """Build or load one model entry for ``data``'s spaces.

    Raises:
        ConfigError: an unknown preset, a model that cannot be built for the data's spaces, or a
            loaded model whose spaces differ from the data's (naming the model).
    """
    from worldflux import create_world_model
    from worldflux.core.model import WorldModel

    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], WorldModel):
        name, model = str(item[0]), item[1]
        check_spaces(name, model, data.spec)
        return Entry(name, model, "given")
    if not isinstance(item, (str, Path)):
        raise ConfigError(
            f"models entries must be preset ids, aliases or paths, got {item!r} "
            f"({type(item).__name__})"
        )
    name = str(item)
    if Path(name).expanduser().exists():
        model = create_world_model(name, device=device)
        check_spaces(name, model, data.spec)
        return Entry(name, model, "loaded")
    try:
        model = create_world_model(name, device=device, **data.spec.model_kwargs())
    except WorldFluxError as err:
        raise ConfigError(
            f"model {name!r} cannot be built for the data ({data.spec.describe()}): {err}"
        ) from None
    return Entry(name, model, "preset")


def _data_module(model: Any, data: CompareData, updates: int, seed: int) -> Any:
    """The train app's offline data module, fed from the comparison's training episodes."""
    from worldflux.training.data import OfflineDataModule, batch_shape

    b, t = batch_shape(model, None, None)

    class _Episodes(OfflineDataModule):
        def setup(self, stage: str | None = None) -> None:
            if self.replay_loaded:
                return
            self.replay = data.replay(seed)
            length = self.longest_sequence()
            if not self.replay.can_sample(length):
                raise ConfigError(
                    f"{type(model).__name__} trains on sequences of {length} steps; the "
                    f"training data holds only {len(self.replay)} steps (raise "
                    "data.train_episodes)"
                )
            self.replay_loaded = True

    return _Episodes("<compare>", b, t, updates, seed=seed)


def fit(model: Any, data: CompareData, updates: int, seed: int, device: str) -> float:
    """Run ``updates`` training updates of ``model``; return their wall time in seconds.

    The time is measured from the first batch to the end of the last update (Lightning's set-up
    is not counted), so it divides into updates per second.
    """
    import lightning as L
    import torch

    from worldflux.training.setup import accelerator

    if updates < 1:
        return 0.0
    clock: dict[str, float] = {}

    class _Clock(L.Callback):
        def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, idx: int) -> None:
            clock.setdefault("start", time.perf_counter())

        def on_train_end(self, trainer: Any, module: Any) -> None:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            clock["end"] = time.perf_counter()

    # one "GPU available" banner per model is noise in a comparison
    noisy = [logging.getLogger(n) for n in ("lightning.pytorch", _RANK_ZERO)]
    levels = [n.level for n in noisy]
    for n in noisy:
        n.setLevel(logging.WARNING)
    try:
        trainer = L.Trainer(
            accelerator=accelerator(device),
            devices=1,
            max_epochs=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=[_Clock()],
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(num_workers|many workers|LeafSpec).*")
            torch.manual_seed(seed)
            trainer.fit(model, datamodule=_data_module(model, data, updates, seed))
    finally:
        for n, level in zip(noisy, levels):
            n.setLevel(level)
    model.eval()
    return clock.get("end", 0.0) - clock.get("start", 0.0)


def prepare(
    items: list[Any], data: CompareData, updates: int, seed: int, device: str
) -> list[Entry]:
    """Resolve every model, then train the presets ``updates`` updates on the same data."""
    if not items:
        raise ConfigError("compare needs models=[...]: preset ids, aliases or model paths")
    entries = [resolve(item, data, device) for item in items]
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ConfigError(f"models lists a model twice: {names}")
    for entry in entries:
        if entry.origin == "preset" and updates > 0:
            if not entry.model.supports("loss"):
                raise ConfigError(f"model {entry.name!r} cannot be trained: it has no loss()")
            from worldflux.compare.cost import train_and_measure

            train_and_measure(entry, data, updates, seed, device)
        entry.model.eval()
    return entries


def capabilities(model: Any) -> frozenset[str]:
    """The capabilities a model declares (the typed contract of :mod:`worldflux.core.protocols`)."""
    caps: Any = getattr(model, "capabilities", frozenset())
    return frozenset(caps) if isinstance(caps, (set, frozenset, Mapping)) else frozenset()
