"""``python -m worldflux.eval``: evaluate a trained model's agent and write a video.

Examples::

    python -m worldflux.eval checkpoint=outputs/train/experiment-quickstart episodes=10
    python -m worldflux.eval checkpoint=path/to/export env=catch episodes=5 video=false

``checkpoint`` is a run directory, an export directory or a ``.ckpt``. The environment is the
run's own (read from ``<run dir>/.hydra/config.yaml``) unless ``env=`` names one. Episodes use
the policy's deterministic mode (``eval_mode=True``) and are the same for the same ``seed``; the
mean and standard deviation of the returns are printed and saved to ``<eval dir>/returns.json``,
the first episode to ``<eval dir>/episode.mp4`` (``.gif`` without ``worldflux[video]``; a warning
says so when the environment cannot render).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from worldflux.catalog import conf_dir
from worldflux.cli import run_cli
from worldflux.core.config import to_plain
from worldflux.errors import ConfigError
from worldflux.training.validate import validate_config


def run_env_config(checkpoint: str) -> dict[str, Any]:
    """The env config of the run a checkpoint belongs to, read as untrusted data.

    See :func:`worldflux.loading.load_run_env`: ids with ``module:`` syntax are refused.
    """
    from worldflux.loading import load_run_env

    return load_run_env(checkpoint)


def _checkpoint(cfg: DictConfig) -> str:
    path = Path(str(cfg.checkpoint)).expanduser()
    if not path.exists():
        raise ConfigError(f"checkpoint={cfg.checkpoint}: no such file or directory")
    return str(cfg.checkpoint)


def evaluate(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Run ``cfg.episodes`` episodes; return ``{"mean", "std", "returns", "lengths", "video"}``."""
    import numpy as np

    from worldflux import create_world_model
    from worldflux.training.evaluation import run_episodes
    from worldflux.training.video import write_video

    if OmegaConf.is_missing(cfg, "checkpoint") or cfg.checkpoint is None:
        raise ConfigError(
            "eval needs checkpoint=<run dir | export dir | .ckpt>, e.g. "
            "python -m worldflux.eval checkpoint=outputs/train/experiment-quickstart"
        )
    validate_config(cfg, "eval")  # every CLI value, before anything is built
    checkpoint = _checkpoint(cfg)
    env_cfg = to_plain(cfg.env) if cfg.get("env") else run_env_config(checkpoint)
    model = create_world_model(checkpoint, device=str(cfg.device))
    run = run_episodes(model, env_cfg, int(cfg.episodes), int(cfg.seed), render=bool(cfg.video))
    for note in run.notes:
        print(f"warning: {note}")
    result: dict[str, Any] = {
        "mean": float(np.mean(run.returns)),
        "std": float(np.std(run.returns)),
        "returns": run.returns,
        "lengths": run.lengths,
        "seed": int(cfg.seed),
        "checkpoint": checkpoint,
    }
    if run.frames is not None:
        result["video"] = str(write_video(out_dir / "episode", run.frames, int(cfg.fps)))
    (out_dir / "returns.json").write_text(json.dumps(result, indent=2))
    print(
        f"{len(run.returns)} episodes: return {result['mean']:.3f} +- {result['std']:.3f}"
        + (f"; video {result['video']}" if "video" in result else "")
    )
    return result


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="eval")
def _app(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    run_cli(evaluate, cfg, out_dir, run_dir=out_dir)


def main() -> None:
    """Console entry point (``worldflux-eval``)."""
    from worldflux.cli import help_text

    if {"--help", "-h"} & set(sys.argv[1:]):
        print(help_text("worldflux.eval", "eval"))
        return
    _app()


if __name__ == "__main__":
    main()
