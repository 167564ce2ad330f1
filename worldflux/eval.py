"""``python -m worldflux.eval``: evaluate a trained model's agent and write a video.

Examples::

    python -m worldflux.eval checkpoint=outputs/train/experiment-quickstart episodes=10
    python -m worldflux.eval checkpoint=path/to/export env=catch episodes=5 video=false
    python -m worldflux.eval checkpoint=walker-walk-5.pt model=tdmpc2/5m env=dmc/walker_walk

``checkpoint`` is a run directory, an export directory or a ``.ckpt``. The environment is the
run's own (read from ``<run dir>/.hydra/config.yaml``) unless ``env=`` names one. With ``model=``,
``checkpoint`` is a weight file for that preset instead: a released agent of the reference
implementation (for example an official TD-MPC2 ``.pt``) or a ``state_dict`` file of ours, loaded
by ``create_world_model(model, weights=checkpoint)`` for the spaces of ``env`` (which is then
required; see :mod:`worldflux.weights`). Episodes use
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
    if cfg.get("model"):
        model, env_cfg = _released_agent(cfg, checkpoint)
    else:
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


def _released_agent(cfg: DictConfig, weights: str) -> tuple[Any, dict[str, Any]]:
    """``model=<preset>`` with ``checkpoint=<weight file>``: build the preset for ``env``'s spaces
    and load the file (ours or the reference implementation's layout)."""
    from worldflux import create_world_model
    from worldflux.envs.registry import env_spec

    if not cfg.get("env"):
        raise ConfigError(
            "model=... evaluates a weight file and needs env=<environment> for its spaces, e.g. "
            "python -m worldflux.eval checkpoint=agent.pt model=tdmpc2/5m env=dmc/walker_walk"
        )
    if Path(weights).is_dir():
        raise ConfigError(
            f"checkpoint={weights} is a directory; with model=... it must be a weight file "
            "(drop model= to evaluate a run or export directory)"
        )
    env_cfg = to_plain(cfg.env)
    node = OmegaConf.to_container(cfg.model, resolve=True)
    model = create_world_model(
        node, weights=weights, device=str(cfg.device), **env_spec(env_cfg).model_kwargs()
    )
    return model, env_cfg


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
