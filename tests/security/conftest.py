"""Fixtures of the hostile-file tests: a saved model, a sentinel, a clean gate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from worldflux.core import instantiate


@pytest.fixture(autouse=True)
def clean_gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No user prefixes before or after a test, from either source."""
    monkeypatch.delenv(instantiate.ENV_VAR, raising=False)
    instantiate.clear_user_prefixes()
    yield
    instantiate.clear_user_prefixes()


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[Path]:
    """A file that hostile payloads try to create; the test fails if it ever appears."""
    path = tmp_path / "SENTINEL"
    yield path
    assert not path.exists(), "a hostile file ran code"


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``save_pretrained`` directory of ``tdmpc2:ci`` (copy it before tampering)."""
    from worldflux import create_world_model

    path = tmp_path_factory.mktemp("saved") / "model"
    create_world_model("tdmpc2:ci").save_pretrained(path, model_id="tdmpc2:ci")
    return path


@pytest.fixture(scope="session")
def saved_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Lightning checkpoint of ``tdmpc2:ci`` written by a Trainer."""
    import lightning as L

    from worldflux import create_world_model

    model = create_world_model("tdmpc2:ci")
    trainer = L.Trainer(
        max_steps=0, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.strategy.connect(model)
    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    trainer.save_checkpoint(path)
    return path
