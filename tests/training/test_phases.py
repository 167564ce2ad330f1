"""The phase machinery: schema errors, schedules, the generic step's numbers, honest counters."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import torch

from worldflux import get_config
from worldflux.core.phases import Schedule, parse_phases
from worldflux.errors import ConfigError
from worldflux.models.dreamerv3.module import DreamerV3
from worldflux.models.tdmpc2.module import TDMPC2

from tests.models.dreamerv3.conftest import make_batch as dreamer_batch
from tests.models.tdmpc2.test_tdmpc2_training import make_batch as tdmpc2_batch

#: sha256 of the state dict after two updates, recorded from the code before the phase refactor
#: (DreamerV3.train_update and TDMPC2.update with their own optimisers, torch 2.13 CPU, 1 thread).
PINNED = {
    "dreamer:ci": "8d12c3051ac5f381802e9bbae60cd63f2e4a7e731e5041310c4879f4f9681bca",
    "tdmpc2:ci": "b21c0a3d3f5c1e11b0972da08ff868597fbe05155643540ec899dfebbed2fbd8",
}


def _digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


@pytest.fixture
def one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("preset", sorted(PINNED))
def test_generic_phase_step_is_bit_identical_to_the_old_update(preset: str, one_thread: Any) -> None:
    torch.manual_seed(0)
    if preset == "dreamer:ci":
        model: Any = DreamerV3(get_config(preset))
        batches = [{"agent": dreamer_batch(model.config, b=2, t=6, seed=i)} for i in range(2)]
    else:
        model = TDMPC2(get_config(preset))
        batches = [{"model": tdmpc2_batch(), "policy": None} for _ in range(2)]
        for b in batches:
            b["policy"] = b["model"]
    optimizers = model.configure_optimizers()
    for batch in batches:
        model.run_update(batch, optimizers)
    assert _digest(model) == PINNED[preset]
