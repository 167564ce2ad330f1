"""``python -m worldflux.eval``: evaluate a trained model's agent and write a video.

Examples::

    python -m worldflux.eval checkpoint=outputs/train/experiment-quickstart episodes=10
    python -m worldflux.eval checkpoint=path/to/export env=catch episodes=5 video=false

``checkpoint`` is a run directory, an export directory or a ``.ckpt``. The environment is the
run's own (read from ``<run dir>/.hydra/config.yaml``) unless ``env=`` names one. Episodes use
the policy's mode (``eval_mode=True``); the mean and standard deviation of the returns are printed
and saved to ``<eval dir>/returns.json``, the first episode to ``<eval dir>/episode.gif``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

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


def evaluate(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Run ``cfg.episodes`` episodes; return ``{"mean", "std", "returns", "lengths", "video"}``."""
    import numpy as np

    from worldflux import create_world_model
    from worldflux.envs.registry import make_vector_env
    from worldflux.training.collector import Collector
    from worldflux.training.video import write_gif

    validate_config(cfg, "eval")  # every CLI value, before anything is built
    if cfg.checkpoint in (None, "???"):
        raise ConfigError("eval needs checkpoint=<run dir | export dir | .ckpt>")
    env_cfg = to_plain(cfg.env) if cfg.get("env") else run_env_config(str(cfg.checkpoint))
    env_cfg["num_envs"] = 1
    model = create_world_model(str(cfg.checkpoint), device=str(cfg.device))
    model.eval()
    envs = make_vector_env(env_cfg, seed=int(cfg.seed))
    policy = model if model.supports("act") else None
    if policy is None:
        print(f"warning: {type(model).__name__} has no act(); evaluating random actions")
    collector = Collector(envs, None, seed=int(cfg.seed), window=int(cfg.episodes))
    frames: list[np.ndarray] = []
    while collector.episodes < int(cfg.episodes):
        collector.step(policy if collector.last is not None else None, eval_mode=True)
        if cfg.video and collector.episodes == 0:
            try:
                frames.append(envs.render(0))
            except NotImplementedError:
                cfg.video = False
    envs.close()
    returns = [float(s) for s in collector.scores]
    result = {
        "mean": float(np.mean(returns)),
        "std": float(np.std(returns)),
        "returns": returns,
        "lengths": [int(n) for n in collector.lengths],
        "checkpoint": str(cfg.checkpoint),
    }
    if cfg.video and frames:
        result["video"] = str(write_gif(out_dir / "episode.gif", np.stack(frames), int(cfg.fps)))
    (out_dir / "returns.json").write_text(json.dumps(result, indent=2))
    print(
        f"{len(returns)} episodes: return {result['mean']:.3f} +- {result['std']:.3f}"
        + (f"; video {result['video']}" if "video" in result else "")
    )
    return result


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="eval")
def _app(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    run_cli(evaluate, cfg, Path(HydraConfig.get().runtime.output_dir))


def main() -> None:
    """Console entry point."""
    _app()


if __name__ == "__main__":
    main()
