"""Delegated execution of the official implementations, for side-by-side comparison.

``create_world_model("dreamerv3:official_xl", backend="official_dreamerv3_jax_subprocess")``
returns an :class:`OfficialBackendHandle` instead of a local model. The handle records the backend,
model id, resolved config and device, builds the official command line, and launches it as a
subprocess from a checkout of the official code. worldflux ships none of that code: point the
handle at a checkout with the environment variable named in :data:`BACKENDS` (or ``root=``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worldflux.core.config import WorldModelConfig
from worldflux.errors import BackendError, ConfigError, suggest


@dataclass(frozen=True)
class BackendSpec:
    """How one official implementation is found and launched."""

    model_id: str
    repository: str
    commit: str
    root_env: str
    entry: str
    install: str


BACKENDS: dict[str, BackendSpec] = {
    "official_dreamerv3_jax_subprocess": BackendSpec(
        model_id="dreamerv3:official_xl",
        repository="https://github.com/danijar/dreamerv3",
        commit="e3f0224",
        root_env="WORLDFLUX_DREAMERV3_ROOT",
        entry="dreamerv3/main.py",
        install="git clone https://github.com/danijar/dreamerv3 && cd dreamerv3 && "
        "git checkout e3f0224 && pip install -r requirements.txt (JAX with CUDA for device='cuda')",
    ),
    "official_tdmpc2_torch_subprocess": BackendSpec(
        model_id="tdmpc2:proof_5m",
        repository="https://github.com/nicklashansen/tdmpc2",
        commit="main",
        root_env="WORLDFLUX_TDMPC2_ROOT",
        entry="tdmpc2/train.py",
        install="git clone https://github.com/nicklashansen/tdmpc2 && "
        "pip install -r tdmpc2/docker/requirements (see its README: torch, tensordict, torchrl, "
        "dm_control, hydra-core)",
    ),
}


@dataclass
class OfficialBackendHandle:
    """A handle on the official implementation of a preset, run as a subprocess.

    Attributes:
        backend: backend name (a key of :data:`BACKENDS`).
        model_id: the paired preset id.
        config: the resolved worldflux config (plain data) the run corresponds to.
        device: ``"cpu"`` or ``"cuda"``.
        root: checkout of the official code (defaults to the backend's environment variable).
    """

    backend: str
    model_id: str
    config: dict[str, Any]
    device: str = "cpu"
    root: str | None = None
    spec: BackendSpec = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.spec = BACKENDS[self.backend]
        if self.root is None:
            self.root = os.environ.get(self.spec.root_env)

    def is_available(self) -> bool:
        """Whether a checkout of the official code is present at ``root``."""
        return self.root is not None and (Path(self.root) / self.spec.entry).is_file()

    def command(self, logdir: str = "outputs/official", *extra: str) -> list[str]:
        """The argv that launches the official implementation for this preset."""
        entry = str(Path(self.root or ".") / self.spec.entry)
        if self.backend == "official_dreamerv3_jax_subprocess":
            platform = "cuda" if self.device.startswith("cuda") else "cpu"
            return [
                sys.executable,
                entry,
                "--logdir",
                logdir,
                "--configs",
                "defaults",
                "--jax.platform",
                platform,
                *extra,
            ]
        return [sys.executable, entry, "model_size=5", f"work_dir={logdir}", *extra]

    def launch(self, logdir: str = "outputs/official", *extra: str, check: bool = True) -> Any:
        """Run the official implementation; raises :class:`BackendError` if it is not installed."""
        if not self.is_available():
            raise BackendError(
                f"the official code for backend {self.backend!r} is not installed: set "
                f"{self.spec.root_env} to a checkout of {self.spec.repository} "
                f"(commit {self.spec.commit}). To install: {self.spec.install}"
            )
        return subprocess.run(self.command(logdir, *extra), cwd=self.root, check=check)


def make_handle(
    backend: str, model_id: str | None, config: WorldModelConfig, device: str
) -> OfficialBackendHandle:
    """Validate the backend/preset pairing and return a handle."""
    if backend not in BACKENDS:
        raise ConfigError(
            f"unknown backend {backend!r}; valid: ['native_torch', *{sorted(BACKENDS)}]"
            f"{suggest(backend, BACKENDS)}"
        )
    spec = BACKENDS[backend]
    if model_id != spec.model_id:
        raise ConfigError(
            f"backend {backend!r} pairs with preset {spec.model_id!r}, not {model_id!r}"
        )
    return OfficialBackendHandle(backend, model_id, config.to_dict(), device)
