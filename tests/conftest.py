"""Shared fixtures."""

from __future__ import annotations

import os

import pytest
import torch

#: Two xdist workers on two cores: one thread each; otherwise both cores for the one process.
THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2


@pytest.fixture(autouse=True)
def _seed_and_threads() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(THREADS)
