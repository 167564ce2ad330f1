"""Open-loop PSNR of a diffusion world model on held-out episodes of any environment.

Collects ``--sequences`` sequences of ``--context + --horizon`` steps under uniformly random
actions from the environment an env config makes (its seed, ``--seed``, differs from training's),
each starting at an episode's first step, and prints
:func:`worldflux.models.diffusion.evaluate.open_loop_psnr` for the checkpoint, for an untrained
model of the same config (same sampler, fresh weights) and for copying the last observed frame.
For Atari, install the extra first (``pip install -e ".[atari]"``)::

    python scripts/diffusion_open_loop.py <run>/checkpoints/last.ckpt env=atari/pong env.id=breakout
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from worldflux import create_world_model
from worldflux.envs.registry import make_env
from worldflux.models.diffusion.evaluate import open_loop_psnr


def sequences(env_cfg: dict, count: int, length: int, seed: int) -> dict[str, torch.Tensor]:
    """``count`` random-action sequences of ``length`` steps in the worldflux batch format."""
    env = make_env(env_cfg, seed=seed)
    dim, rng = env.spec.action_dim, np.random.default_rng(seed)
    key = next(k for k, v in env.spec.obs.items() if v.kind == "image")
    obs, acts = [], []
    for _ in range(100 * count):
        if len(obs) == count:
            break
        frames, actions = [env.reset()[key]], [np.zeros(dim, np.float32)]
        for _ in range(length - 1):
            a = np.eye(dim, dtype=np.float32)[rng.integers(dim)]
            o, _, terminated, truncated = env.step(a)
            frames.append(o[key])
            actions.append(a)
            if terminated or truncated:
                break
        if len(frames) == length:
            obs.append(np.stack(frames))
            acts.append(np.stack(actions))
    env.close()
    if len(obs) < count:
        raise SystemExit(f"fewer than {count} of {100 * count} episodes last {length} steps")
    first = np.zeros((count, length), bool)
    first[:, 0] = True
    return {
        "obs": torch.as_tensor(np.stack(obs)),
        "action": torch.as_tensor(np.stack(acts)),
        "first": torch.as_tensor(first),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("overrides", nargs="*", help="env overrides of the train config, e.g. env=catch")
    p.add_argument("--sequences", type=int, default=16)
    p.add_argument("--context", type=int, default=4)
    p.add_argument("--horizon", type=int, default=10)
    p.add_argument("--seed", type=int, default=12345)
    a = p.parse_args()
    torch.manual_seed(0)
    conf = str(Path(__file__).resolve().parents[1] / "conf")
    with initialize_config_dir(config_dir=conf, version_base=None):
        cfg = compose("train", overrides=a.overrides)
    env_cfg = OmegaConf.to_container(cfg.env, resolve=True)
    batch = sequences(env_cfg, a.sequences, a.context + a.horizon, a.seed)
    trained = create_world_model(a.checkpoint)
    fresh = create_world_model(trained.config)
    for name, model in (("checkpoint", trained), ("untrained", fresh)):
        s = open_loop_psnr(model, batch, context=a.context, horizon=a.horizon, seed=0)
        print(
            f"{name:10s} open-loop PSNR {s['model']:.2f} dB, copy last frame {s['copy_last']:.2f} dB"
        )


if __name__ == "__main__":
    main()
