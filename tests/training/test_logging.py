"""Logs: append-only across resumes, every episode logged, hparams tab, optional loggers, quiet."""

from __future__ import annotations

import csv
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import quiet_trainer
from worldflux.envs.registry import env_spec
from worldflux.errors import ConfigError
from worldflux.training import loggers
from worldflux.training.callbacks import TrainMetrics
from worldflux.training.data import OnlineDataModule

ENV = {"suite": "dummy", "id": "discrete_vector", "num_envs": 2, "episode_length": 8}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_csv_log_is_appended_to_when_a_run_resumes(tmp_path: Path) -> None:
    first = loggers.csv(str(tmp_path))
    first.log_metrics({"train/loss/total": 1.0}, step=1)
    first.log_metrics({"train/loss/total": 0.5}, step=2)
    first.save()
    second = loggers.csv(str(tmp_path))  # the rerun of the same command
    second.log_metrics({"train/loss/total": 0.25, "env/return": 3.0}, step=3)
    second.save()
    rows = _rows(tmp_path / "csv" / "metrics.csv")
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["train/loss/total"] == "1.0" and rows[2]["env/return"] == "3.0"


def _fit(model: Any, tmp_path: Path, logger: Any, **data: Any) -> OnlineDataModule:
    spec = env_spec(ENV)
    args = {"train_ratio": 10.0, "prefill": 40, "env_steps": 120, "capacity": 500}
    args.update(data)
    dm = OnlineDataModule(ENV, spec, 4, 5, seed=0, **args)
    trainer = quiet_trainer(
        logger=logger,
        callbacks=[TrainMetrics(every_n_updates=50)],
        default_root_dir=str(tmp_path),
    )
    trainer.fit(model, datamodule=dm)
    return dm


def test_every_finished_episode_reaches_the_log(double: Any, tmp_path: Path) -> None:
    # Two environments end episodes together and metrics are logged every 50 updates only:
    # the per-episode rows must still cover every finished episode, prefill included.
    logger = loggers.csv(str(tmp_path))
    dm = _fit(double(env_spec(ENV)), tmp_path, logger)
    rows = [r for r in _rows(tmp_path / "csv" / "metrics.csv") if r.get("env/episode/return")]
    assert dm.collector is not None and dm.collector.episodes >= 10
    assert len(rows) == dm.collector.episodes
    assert all(r["env/episode/length"] == "8.0" for r in rows)
    assert sorted(int(r["step"]) for r in rows)[-1] <= dm.collector.env_steps


def test_recent_mean_says_how_many_episodes_it_averages(double: Any, tmp_path: Path) -> None:
    dm = _fit(double(env_spec(ENV)), tmp_path, False)
    stats = dm.collector.stats()  # type: ignore[union-attr]
    assert stats["env/return_count"] == min(20, dm.collector.episodes)  # type: ignore[union-attr]
    assert stats["env/return_mean20"] == stats["env/return"]


def test_tensorboard_hparams_tab_holds_the_final_metrics(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = loggers.tensorboard(str(tmp_path))
    tb.log_metrics({"train/loss/total": 1.0}, step=1)
    loggers.log_final([tb], {"model": {"lr": 0.1, "dims": [1, 2]}, "seed": 3}, {"env/return": 2.5})
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert acc.PluginTagToContent("hparams")  # KeyError when the tab is empty
    assert acc.Scalars("final/env/return")[0].value == 2.5


@pytest.mark.parametrize(("name", "module"), [("wandb", "wandb"), ("mlflow", "mlflow")])
def test_optional_loggers_name_their_extra(
    name: str, module: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # find_spec raises or returns None
    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda m: None)
    with pytest.raises(ConfigError, match=rf"worldflux\[{name}\]"):
        getattr(loggers, name)(str(tmp_path))


@pytest.mark.parametrize("name", ["wandb", "mlflow"])
def test_optional_logger_configs_compose(name: str, compose_train: Any) -> None:
    cfg = compose_train(f"logger={name}")
    assert cfg.logger[name]._target_ == f"worldflux.training.loggers.{name}"


def test_lightning_info_lines_print_once_without_adverts() -> None:
    import lightning.pytorch  # noqa: F401  (attaches Lightning's own console handler)

    loggers.quiet_console()
    log = logging.getLogger("lightning.pytorch")
    assert not [h for h in log.handlers if type(h) is logging.StreamHandler]
    record = logging.LogRecord("x", logging.INFO, "", 0, "💡 Tip: try installing", None, None)
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert not rank_zero.filter(record)


def test_results_file_holds_rank_zeros_counters(compose_train: Any, tmp_path: Path) -> None:
    from worldflux.train import train

    cfg = compose_train("eval.final=false", "callbacks.video=null", "data.train_ratio=64")
    metrics = train(cfg)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["updates"] == metrics["train/updates"] > 0
    assert saved["env_steps"] == metrics["env/steps"] == 80


@pytest.mark.slow
def test_spawn_ddp_reports_the_true_update_count(tmp_path: Path) -> None:
    import os
    import re
    import subprocess

    root = Path(__file__).resolve().parents[2]
    cmd = [
        sys.executable, "-m", "worldflux.train", "model=tdmpc2/ci", "env=catch_vector",
        "trainer=ddp", "trainer.strategy=ddp_spawn_find_unused_parameters_true",
        "trainer.devices=2", "device=cpu", "threads=1", "data.env_steps=120",
        "data.prefill=40", "data.batch_size=8", "eval.episodes=1", "callbacks.video=null",
        "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp_path}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = re.search(r"trained (\d+) updates .*, (\d+) env steps", done.stdout)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert printed and int(printed[1]) == saved["updates"] > 0
    assert int(printed[2]) == saved["env_steps"] == 120


@pytest.mark.parametrize("ratio", [3.0, 10.0, 40.0])
def test_planned_updates_is_the_number_a_run_makes(
    ratio: float, double: Any, tmp_path: Path
) -> None:
    from worldflux.training.progress import planned_updates

    spec = env_spec(ENV)
    dm = OnlineDataModule(
        ENV, spec, 4, 5, train_ratio=ratio, prefill=40, env_steps=120, capacity=500, seed=0
    )
    assert planned_updates(dm) is not None  # known before training starts (from prefill)
    before = planned_updates(dm)
    _fit_dm(double(spec), tmp_path, dm)
    assert planned_updates(dm) == before == dm.updates


def _fit_dm(model: Any, tmp_path: Path, dm: OnlineDataModule) -> None:
    trainer = quiet_trainer(
        default_root_dir=str(tmp_path),
    )
    trainer.fit(model, datamodule=dm)


def test_plain_summary_line_when_the_bar_is_off(
    double: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from worldflux.training.progress import PlainProgress

    spec = env_spec(ENV)
    dm = OnlineDataModule(
        ENV, spec, 4, 5, train_ratio=10.0, prefill=40, env_steps=120, capacity=500, seed=0
    )
    trainer = quiet_trainer(
        callbacks=[PlainProgress(every_s=0.0)],
        default_root_dir=str(tmp_path),
    )
    trainer.fit(double(spec), datamodule=dm)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("update ")]
    assert lines and lines[-1].startswith(f"update {dm.updates}/{dm.updates} (100%)")
    assert "env steps 120/120" in lines[-1] and "ETA 0:00" in lines[-1]
