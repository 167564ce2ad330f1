"""Cost: parameters, training updates per second, imagined steps per second, peak memory.

All models are measured in one process on one machine, one after another, so the numbers compare.

- **parameters**: trainable parameters (``WorldModel.num_parameters``);
- **updates/s**: training updates (the family's own ``training_step``, all its phases) per second
  of wall time, from the first batch to the end of the last update;
- **imagined steps/s**: steps per second of the open-loop prediction call (filter + rollout +
  decode, or encode + rollout), batch of all windows;
- **peak memory**: on CUDA the allocator's peak (``torch.cuda.max_memory_allocated``) during the
  model's training updates; on CPU the growth of the process's peak resident memory (``VmHWM``,
  reset through ``/proc/self/clear_refs`` before the model's updates) above the resident memory at
  the start. The CPU figure includes allocator caching and is an upper bound of what the model
  needs; it is ``None`` where ``/proc`` cannot be written.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from worldflux.compare.data import CompareData
from worldflux.compare.models import Entry, fit

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass
class Cost:
    """One model's row of the cost table."""

    name: str
    parameters: int
    updates: int
    updates_per_second: float | None
    imagined_per_second: float | None
    peak_mib: float | None


def _status_kib(field: str) -> int | None:
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


@contextlib.contextmanager
def peak_memory(device: str) -> Iterator[dict[str, float | None]]:
    """Measure the peak memory (MiB) of the block; the result is in the yielded dict's ``mib``."""
    import torch

    out: dict[str, float | None] = {"mib": None}
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        allocated = torch.cuda.memory_allocated()
        yield out
        torch.cuda.synchronize()
        out["mib"] = (torch.cuda.max_memory_allocated() - allocated) / 2**20
        return
    resident: int | None
    try:
        _CLEAR_REFS.write_text("5")  # resets VmHWM to the current resident size
        resident = _status_kib("VmRSS")
    except OSError:
        resident = None
    yield out
    peak = _status_kib("VmHWM")
    if resident is not None and peak is not None:
        out["mib"] = max(peak - resident, 0) / 1024


def train_and_measure(
    entry: Entry, data: CompareData, updates: int, seed: int, device: str
) -> None:
    """Train ``entry`` ``updates`` updates (the comparison's budget) and record time and memory."""
    with peak_memory(device) as mem:
        entry.train_seconds = fit(entry.model, data, updates, seed, device)
    entry.updates = updates
    entry.peak_mib = mem["mib"]


def measure(
    entry: Entry, data: CompareData, updates: int, seed: int, device: str, imagined: float | None
) -> Cost:
    """The cost row of ``entry``; a model not trained here is timed on a copy for ``updates``."""
    if entry.updates == 0 and updates > 0 and entry.model.supports("loss"):
        probe = Entry(entry.name, copy.deepcopy(entry.model), entry.origin)
        train_and_measure(probe, data, updates, seed, device)
        done, seconds, peak = probe.updates, probe.train_seconds, probe.peak_mib
    else:
        done, seconds, peak = entry.updates, entry.train_seconds, getattr(entry, "peak_mib", None)
    rate = done / seconds if done and seconds else None
    return Cost(entry.name, int(entry.model.num_parameters()), done, rate, imagined, peak)


def measure_all(
    entries: list[Entry],
    data: CompareData,
    updates: int,
    seed: int,
    device: str,
    imagined: dict[str, float | None],
) -> list[Cost]:
    """Cost rows of every model (``imagined``: steps/s by model name, from the open loop)."""
    return [measure(e, data, updates, seed, device, imagined.get(e.name)) for e in entries]
