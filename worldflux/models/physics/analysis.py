"""Long-rollout evaluation of trained physics models: state error and energy drift.

The HNN paper's comparison (Greydanus et al. 2019, Table/Figure "energy MSE"): integrate the
learned field from held-out initial states far past the training horizon and compare with the true
trajectory: the mean squared state error and the mean squared error of the true energy along the
predicted trajectory against the initial energy. A structured (Hamiltonian) model conserves its
learned energy, so its drift stays small where a baseline MLP's grows.

Run on two training runs (``python -m worldflux.train ...``, see docs/learning.md)::

    python -m worldflux.models.physics.analysis --env physics_spring \
        --run hnn=outputs/hnn --run baseline=outputs/baseline --steps 300
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldflux.envs.physics import PhysicsEnv


def true_trajectories(env: PhysicsEnv, starts: np.ndarray, steps: int) -> np.ndarray:
    """True states ``(N, steps + 1, D)`` from ``starts (N, D)`` without forces."""
    out = np.zeros((starts.shape[0], steps + 1, starts.shape[1]))
    for i, x in enumerate(starts):
        out[i, 0] = x
        for t in range(steps):
            x = env.advance(x)
            out[i, t + 1] = x
    return out


@torch.no_grad()
def model_trajectories(model: Any, starts: np.ndarray, steps: int) -> np.ndarray:
    """The model's states ``(N, steps + 1, D)`` from ``starts``, zero actions."""
    x = torch.as_tensor(starts, dtype=torch.float32)
    actions = torch.zeros(x.shape[0], steps, model.config.action_dim)
    states = model.rollout(x, actions).states
    return torch.cat([x[:, None], states], 1).double().numpy()


def rollout_metrics(
    model: Any, env: PhysicsEnv, episodes: int = 25, steps: int = 300, seed: int = 12345
) -> dict[str, float]:
    """State MSE and energy MSE (true energy along the prediction vs the start) over ``steps``."""
    rng = np.random.default_rng(seed)
    starts = []
    for _ in range(episodes):
        starts.append(env.reset(seed=int(rng.integers(2**31)))["obs"].astype(np.float64))
        starts[-1] = env.state.copy()  # the exact state, not a noisy observation
    x0 = np.stack(starts)
    truth = true_trajectories(env, x0, steps)
    pred = model_trajectories(model, x0, steps)
    energy = env.energy(pred)
    return {
        "state_mse": float(((pred - truth) ** 2).mean()),
        "energy_mse": float(((energy - env.energy(x0)[:, None]) ** 2).mean()),
        "final_energy_drift": float(np.abs(energy[:, -1] - energy[:, 0]).mean()),
    }


def _true_frames(env: PhysicsEnv, seed: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``(steps + 1, 2, H, W)`` in [0, 1] and exact states ``(steps + 1, 2)`` of one episode."""
    frames = [env.reset(seed=seed)["obs"]]
    states = [env.state.copy()]
    for _ in range(steps):
        frames.append(env.step(np.zeros(1, np.float32))[0]["obs"])
        states.append(env.state.copy())
    return np.stack(frames).astype(np.float64) / 255.0, np.stack(states)


@torch.no_grad()
def pixel_rollout_metrics(
    model: Any,
    env: PhysicsEnv,
    episodes: int = 25,
    steps: int = 300,
    seed: int = 12345,
    short: int = 30,
) -> dict[str, float]:
    """PixelHNN: roll the latent of the first frame pair ``steps`` frames, decode, compare.

    ``pixel_mse``: decoded frames against the true frames along the rollout. ``energy_mse``: a
    linear read-out ``(q, p) ~ W [z, 1]`` is fitted (least squares) on the encoded *true* frames of
    the same episodes, applied to the predicted latents, and the true energy of the read-out is
    compared with the initial energy, as :func:`rollout_metrics` does for states. The read-out is
    the same procedure for every model, so the comparison is fair; it is exact only as far as the
    learned latent is linear in ``(q, p)``. ``readout_energy_mse``: the same read-out's energy
    error on the encoded true frames themselves (its floor, no rollout).

    A latent that does not move keeps its energy exactly, so the energy alone cannot tell a dead
    field from a good one: ``pixel_mse_short`` is the pixel MSE over the first ``short`` frames
    and ``still_pixel_mse_short`` that of holding the first decoded frame pair still.
    """
    rng = np.random.default_rng(seed)
    episodes_data = [_true_frames(env, int(rng.integers(2**31)), steps) for _ in range(episodes)]
    frames = np.stack([f for f, _ in episodes_data])  # (N, steps + 1, 2, H, W)
    states = np.stack([x for _, x in episodes_data])  # (N, steps + 1, 2)
    z_true = model.encode(torch.as_tensor(frames, dtype=torch.float32)).double().numpy()
    z0 = torch.as_tensor(z_true[:, 0], dtype=torch.float32)
    actions = torch.zeros(z0.shape[0], steps, model.config.action_dim)
    z_pred = torch.cat([z0[:, None], model.rollout(z0, actions).states], 1)
    decoded = model.decode(z_pred)["obs"].double().numpy()
    feats = np.concatenate([z_true, np.ones_like(z_true[..., :1])], -1).reshape(-1, 3)
    w = np.linalg.lstsq(feats, states.reshape(-1, 2), rcond=None)[0]
    pred_feats = np.concatenate([z_pred.double().numpy(), np.ones_like(z_true[..., :1])], -1)
    energy = env.energy(pred_feats @ w)
    energy0 = env.energy(states[:, :1])
    readout = env.energy(feats.reshape(*z_true.shape[:-1], 3) @ w)
    k = min(short, steps) + 1
    return {
        "pixel_mse": float(((decoded - frames) ** 2).mean()),
        "energy_mse": float(((energy - energy0) ** 2).mean()),
        "final_energy_drift": float(np.abs(energy[:, -1] - energy[:, 0]).mean()),
        "readout_energy_mse": float(((readout - energy0) ** 2).mean()),
        "pixel_mse_short": float(((decoded[:, :k] - frames[:, :k]) ** 2).mean()),
        "still_pixel_mse_short": float(((decoded[:, :1] - frames[:, :k]) ** 2).mean()),
    }


def compare(
    runs: Mapping[str, str | Path], env_cfg: Mapping[str, Any], steps: int, episodes: int = 25
) -> dict[str, dict[str, float]]:
    """:func:`rollout_metrics` (pixels: :func:`pixel_rollout_metrics`) of each run's last checkpoint."""
    from worldflux import create_world_model
    from worldflux.envs.registry import make_env

    env = make_env(env_cfg, seed=0)
    if not isinstance(env, PhysicsEnv):
        raise TypeError(f"the drift comparison needs a physics environment, got {type(env)}")
    out = {}
    for name, run in runs.items():
        model = create_world_model(str(Path(run) / "checkpoints" / "last.ckpt")).eval()
        pixels = getattr(model, "autoencoder", None) is not None
        metrics = pixel_rollout_metrics if pixels else rollout_metrics
        out[name] = metrics(model, env, episodes, steps)
    return out


def table(results: Mapping[str, Mapping[str, float]]) -> str:
    """A markdown table of :func:`compare`'s results."""
    error = "pixel_mse" if any("pixel_mse" in r for r in results.values()) else "state_mse"
    lines = [f"| model | {error.replace('_', ' ')} | energy MSE | final energy drift |",
             "|---|---|---|---|"]  # fmt: skip
    for name, r in results.items():
        lines.append(
            f"| {name} | {r[error]:.3e} | {r['energy_mse']:.3e} | {r['final_energy_drift']:.3e} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line: print the table for ``--run name=dir`` pairs on ``--env``."""
    import yaml

    from worldflux import catalog

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="physics_spring", help="a conf/env file name")
    parser.add_argument("--run", action="append", required=True, help="name=run_directory")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--episodes", type=int, default=25)
    args = parser.parse_args(argv)
    env_cfg = yaml.safe_load((catalog.conf_dir() / "env" / f"{args.env}.yaml").read_text())
    runs = dict(item.split("=", 1) for item in args.run)
    print(table(compare(runs, env_cfg, args.steps, args.episodes)))


if __name__ == "__main__":
    main()
