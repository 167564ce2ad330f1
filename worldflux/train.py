"""``python -m worldflux.train``: train any model on any environment (Hydra app).

Examples::

    python -m worldflux.train                                   # tiny TD-MPC2 on Catch, minutes
    python -m worldflux.train model=dreamerv3/size12m env=catch data.env_steps=1000000 device=cuda
    python -m worldflux.train experiment=quickstart             # the README's 5-minute demo
    python -m worldflux.train -m model=dreamer/ci,tdmpc2/ci seed=0,1

The run directory is ``outputs/train/<overrides>``, so running the same command again resumes
from its last checkpoint (``resume=never`` starts over). See ``docs/training.md``.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from worldflux.catalog import conf_dir
from worldflux.cli import run_cli
from worldflux.errors import ConfigError, WorldFluxError
from worldflux.training.validate import validate_config


def run_name(override_dirname: str) -> str:
    """A directory name from Hydra's ``override_dirname`` (``default`` when there is none).

    ``model=tdmpc2/ci,seed=1`` becomes ``model-tdmpc2-ci_seed-1``: no ``=`` or ``,``, so the path
    can be passed back as an override value (``python -m worldflux.eval checkpoint=<run dir>``).
    """
    name = override_dirname.replace("=", "-").replace(",", "_").replace("/", "-").replace(":", "-")
    return name or "default"


OmegaConf.register_new_resolver("wf_run_name", run_name, replace=True)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train ``cfg.model`` as ``cfg`` says; return the final metrics.

    Builds (and validates) the data spaces, the model, the data module and the Trainer, resumes
    from ``<run dir>/checkpoints/last.ckpt`` when present, fits, and exports the model with
    ``save_pretrained`` into ``<run dir>/export``.
    """
    validate_config(cfg, "train")  # every CLI value, before anything is built
    import lightning as L
    from hydra.core.hydra_config import HydraConfig

    from worldflux.training import loggers, setup
    from worldflux.training.checkpoint import export_model, resume_path

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    # EMA targets (TD-MPC2's target Qs) stay in eval mode on purpose; Lightning warns about them.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    loggers.quiet_console()
    if cfg.get("threads"):
        import torch

        torch.set_num_threads(int(cfg.threads))
    if setup.accelerator(str(cfg.device)) == "cpu":
        setup.keep_freed_memory()  # about 25% faster CPU updates for the larger presets
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    spec = setup.data_spec(cfg)
    model = setup.build_model(cfg, spec)
    datamodule = setup.build_datamodule(cfg, model, spec, run_dir)
    trainer = setup.build_trainer(cfg, run_dir, model)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    if cfg.get("compile"):
        compile_model(model)
    ckpt = resume_path(run_dir / "checkpoints", cfg.resume)
    if ckpt and trainer.is_global_zero:
        print(f"resuming from {ckpt}")
    started = time.time()
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt)

    metrics = final_metrics(trainer, datamodule, run_dir, since=started)
    updates, resumed = int(metrics["train/updates"]), int(metrics.pop("train/resumed_from"))
    if trainer.is_global_zero:
        steps = f", {int(metrics['env/steps'])} env steps" if "env/steps" in metrics else ""
        score = f", return {metrics['env/return']:.3f}" if "env/return" in metrics else ""
        evals = f", eval return {metrics['eval/return']:.3f}" if "eval/return" in metrics else ""
        print(
            f"trained {updates} updates ({updates - resumed} in this session){steps}{score}{evals}"
        )
        loggers.log_final(trainer.loggers, OmegaConf.to_container(cfg, resolve=True), metrics)
    if cfg.get("export", True):
        export = export_model(trainer, model, run_dir / "export")  # every rank: FSDP gathers
        if export is not None:
            metrics["export"] = str(export)  # type: ignore[assignment]
            print(f"exported {model.model_id or type(model).__name__} to {export}")
    return metrics


def compile_model(model: Any) -> None:
    """``compile=true``: compile the family's phase losses (forward and backward graphs).

    ``torch.compile(model)`` would compile only ``forward``, which training never calls.
    """
    if not getattr(model, "schedule", None):
        raise ConfigError(
            f"compile=true compiles the training phases, and {type(model).__name__} declares none"
        )
    model.compile_phases()


def final_metrics(
    trainer: Any, datamodule: Any, run_dir: Path, since: float = 0.0
) -> dict[str, float]:
    """The run's final metrics and counters, as rank 0 saw them.

    Rank 0 writes them to ``<run dir>/results.json`` when training ends
    (:class:`~worldflux.training.callbacks.RunResults`); under spawn-DDP that file is the only
    place they exist, since this process's own datamodule never trained. A file older than
    ``since`` (a previous session's) is ignored.
    """
    import json

    from worldflux.training.callbacks import RunResults

    path = run_dir / RunResults.FILE
    if path.is_file() and path.stat().st_mtime >= since:
        saved = json.loads(path.read_text())
        metrics = {k: float(v) for k, v in saved["metrics"].items()}
        metrics["train/updates"] = float(saved["updates"])
        metrics["train/resumed_from"] = float(saved["resumed_from"])
        return metrics
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    collector = getattr(datamodule, "collector", None)
    if collector is not None:  # the final counters, not the last logged ones
        metrics.update(collector.stats(), **{"env/steps": float(collector.env_steps)})
    metrics["train/updates"] = float(datamodule.updates)
    metrics["train/resumed_from"] = float(datamodule.resumed_from)
    return metrics


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")
def _app(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    metrics = run_cli(train, cfg, run_dir=run_dir)
    score = metrics.get(str(cfg.get("optimized_metric") or "env/return"))
    return float(score) if isinstance(score, float) else None


def _normalise_argv(argv: list[str]) -> list[str]:
    """Accept ``model=family:variant`` and aliases with a clear error for unknown models."""
    from worldflux import catalog

    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") == "model" and value and "," not in value and "(" not in value:
            try:
                value = catalog.id_to_path(catalog.resolve(value.replace("/", ":"))[0])
            except WorldFluxError as err:
                print(f"error: model={value}: {err}", file=sys.stderr)
                sys.exit(2)
            arg = f"{key}={value}"
        out.append(arg)
    return out


def main() -> None:
    """Console entry point (``worldflux-train``)."""
    from worldflux.cli import help_text, unknown_override

    if {"--help", "-h"} & set(sys.argv[1:]):
        print(help_text("worldflux.train", "train"))
        return
    sys.argv[1:] = _normalise_argv(sys.argv[1:])
    problem = unknown_override(sys.argv[1:], "train")
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    _app()


if __name__ == "__main__":
    main()
