"""``python -m worldflux.collect``: write a dataset of episodes for offline training.

Examples::

    python -m worldflux.collect env=catch episodes=100
    python -m worldflux.collect env=catch_vector episodes=50 policy=outputs/train/<run>/export

``policy`` is ``random`` or a trained model (anything ``create_world_model`` loads: an export
directory, a run directory or a ``.ckpt``) whose ``act`` chooses the actions. The dataset lands in
``path``, by default ``outputs/datasets/<suite>-<id>[-<obs>][-<action>]-<seed>``, one folder per
environment and observation kind. Collecting into an existing dataset of the same environment
appends episodes (a killed run loses at most the episode in progress); a dataset of another
environment is refused. Train from it with
``python -m worldflux.train data=offline data.path=<path> model=...``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from worldflux.catalog import conf_dir
from worldflux.cli import run_cli
from worldflux.core.config import to_plain
from worldflux.errors import WorldFluxError


def dataset_dir(env: Mapping[str, Any], seed: Any) -> str:
    """The default dataset folder of an env config: one per environment and observation kind.

    ``{suite: embedded, id: catch, obs: vector, action: continuous}`` and seed 0 give
    ``outputs/datasets/embedded-catch-vector-continuous-0``, so image and vector Catch episodes
    never share a folder.
    """
    env = to_plain(env) if not isinstance(env, dict) else env
    parts = [str(env.get("suite", "env")), str(env.get("id", "unknown"))]
    parts += [str(env[k]) for k in ("obs", "action") if env.get(k) is not None]
    name = "-".join(parts + [str(seed)]).replace("/", "-").replace(":", "-")
    return f"outputs/datasets/{name}"


OmegaConf.register_new_resolver("wf_dataset_dir", dataset_dir, replace=True)


def _session_seed(seed: int, existing: int) -> int:
    """The env seed of a run appending to ``existing`` episodes: fresh episodes, reproducibly."""
    if existing == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence([seed, existing]).generate_state(1)[0] >> 1)


def collect(cfg: DictConfig) -> dict[str, Any]:
    """Collect ``cfg.episodes`` episodes of ``cfg.env`` into ``cfg.path``; return a summary."""
    import numpy as np

    from worldflux.data.episodes import EpisodeRecorder
    from worldflux.data.writer import DatasetWriter
    from worldflux.envs.registry import env_spec, make_vector_env
    from worldflux.training.collector import Collector
    from worldflux.training.validate import validate_config

    validate_config(cfg, "collect")
    env_cfg = to_plain(cfg.env)
    model = None
    if str(cfg.policy) != "random":
        from worldflux import create_world_model

        model = create_world_model(str(cfg.policy), device=str(cfg.device))
        if not model.supports("act"):
            raise WorldFluxError(f"{cfg.policy} has no act(); use policy=random")
    out = Path(str(cfg.path))
    session = {"policy": str(cfg.policy), "seed": int(cfg.seed)}
    with DatasetWriter(out, env_spec(env_cfg), env_cfg, session) as writer:
        seed = _session_seed(int(cfg.seed), writer.existing)
        envs = make_vector_env(env_cfg, seed=seed)
        collector = Collector(envs, None, seed=seed)
        recorder = EpisodeRecorder(envs.spec, envs.num_envs)
        steps, scores = 0, []
        try:
            while writer.written < int(cfg.episodes):
                step = collector.step(
                    model if collector.last is not None else None, eval_mode=bool(cfg.eval_mode)
                )
                steps += envs.num_envs
                for episode in recorder.add(step):
                    if writer.written < int(cfg.episodes):
                        writer.add(episode)
                        scores.append(float(episode["reward"].sum()))
        finally:
            envs.close()
    summary = {
        "path": str(out),
        "episodes": writer.written,
        "total_episodes": writer.existing + writer.written,
        "steps": steps,
        "mean_return": float(np.mean(scores)),
    }
    added = f" (the dataset now holds {summary['total_episodes']})" if writer.existing else ""
    print(
        f"wrote {writer.written} episodes ({steps} steps, mean return "
        f"{summary['mean_return']:.3f}) to {out}{added}"
    )
    return summary


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="collect")
def _app(cfg: DictConfig) -> None:
    run_cli(collect, cfg)


def main() -> None:
    """Console entry point."""
    _app()


if __name__ == "__main__":
    main()
