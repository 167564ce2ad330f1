"""``python -m worldflux.collect``: write a dataset of episodes for offline training.

Examples::

    python -m worldflux.collect env=catch episodes=100
    python -m worldflux.collect env=catch_vector episodes=50 policy=outputs/train/<run>/export

``policy`` is ``random`` or a trained model (anything ``create_world_model`` loads: an export
directory, a run directory or a ``.ckpt``) whose ``act`` chooses the actions. The dataset lands in
``path`` (default ``outputs/datasets/<suite>-<id>-<seed>``) and trains any family with
``python -m worldflux.train data=offline data.path=<path> model=...``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from worldflux.catalog import conf_dir
from worldflux.core.config import to_plain
from worldflux.errors import WorldFluxError


def collect(cfg: DictConfig) -> dict[str, Any]:
    """Collect ``cfg.episodes`` episodes of ``cfg.env`` into ``cfg.path``; return a summary."""
    import numpy as np

    from worldflux.data.episodes import EpisodeRecorder, write_episode, write_spec
    from worldflux.envs.registry import make_vector_env
    from worldflux.training.collector import Collector

    env_cfg = to_plain(cfg.env)
    envs = make_vector_env(env_cfg, seed=int(cfg.seed))
    model = None
    if str(cfg.policy) != "random":
        from worldflux import create_world_model

        model = create_world_model(str(cfg.policy), device=str(cfg.device))
        if not model.supports("act"):
            raise WorldFluxError(f"{cfg.policy} has no act(); use policy=random")
    out = Path(str(cfg.path))
    write_spec(out, envs.spec, {"env": env_cfg, "policy": str(cfg.policy), "seed": int(cfg.seed)})
    collector = Collector(envs, None, seed=int(cfg.seed))
    recorder = EpisodeRecorder(envs.spec, envs.num_envs)
    written, steps, scores = 0, 0, []
    while written < int(cfg.episodes):
        step = collector.step(
            model if collector.last is not None else None, eval_mode=bool(cfg.eval_mode)
        )
        steps += envs.num_envs
        for episode in recorder.add(step):
            if written < int(cfg.episodes):
                write_episode(out, written, episode)
                scores.append(float(episode["reward"].sum()))
                written += 1
    envs.close()
    summary = {
        "path": str(out),
        "episodes": written,
        "steps": steps,
        "mean_return": float(np.mean(scores)),
    }
    print(
        f"wrote {written} episodes ({steps} steps, mean return {summary['mean_return']:.3f}) "
        f"to {out}"
    )
    return summary


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="collect")
def _app(cfg: DictConfig) -> None:
    try:
        collect(cfg)
    except WorldFluxError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    """Console entry point."""
    _app()


if __name__ == "__main__":
    main()
