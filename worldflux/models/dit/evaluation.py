"""Learning checks of the DiT family: open-loop frame prediction and goal reaching.

- :func:`open_loop`: on held-out episodes of random actions, predict ``horizon`` frames
  autoregressively from ``context_size`` true frames and the true actions, and compare PSNR and
  SSIM of the predictions with the copy-last-frame baseline (the last context frame repeated).
- :func:`goal_reaching`: success rate and final distance of CEM planning toward the goal frame
  (``act(..., goal=...)``) against uniformly random actions, on the same episodes.
- :func:`context_probe`: the denoiser's ``x_0`` error on true windows at given diffusion steps,
  with the true context frames and with the context of another episode: when both agree, the
  prediction does not depend on the context (cross-attention unused).

Axis legend: ``B`` batch, ``H`` horizon, ``C, Hh, W`` image channels, height and width.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from worldflux.envs.base import SINGLE


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """PSNR ``(N,)`` in dB of images in ``[0, 1]`` ``(N, C, Hh, W)``."""
    mse = (pred - target).pow(2).flatten(1).mean(1).clamp(min=1e-10)
    return 10 * torch.log10(1.0 / mse)


def ssim(pred: Tensor, target: Tensor, window: int = 7, sigma: float = 1.5) -> Tensor:
    """SSIM ``(N,)`` (Wang et al. 2004; Gaussian window, ``C1 = 0.01^2``, ``C2 = 0.03^2``)."""
    c = pred.shape[1]
    pos = torch.arange(window, dtype=pred.dtype) - window // 2
    g = torch.exp(-0.5 * (pos / sigma) ** 2)
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(c, 1, window, window)

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, kernel, padding=window // 2, groups=c)

    mu_p, mu_t = blur(pred), blur(target)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(pred * target) - mu_p * mu_t
    c1, c2 = 0.01**2, 0.03**2
    num = (2 * mu_p * mu_t + c1) * (2 * cov + c2)
    den = (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
    return (num / den).flatten(1).mean(1)


def random_episodes(env: Any, episodes: int, length: int, seed: int) -> tuple[Tensor, Tensor]:
    """Frames ``(E, L, C, Hh, W)`` uint8 and actions ``(E, L, A)`` of random-action episodes.

    ``actions[:, i]`` leads from frame ``i`` to frame ``i + 1`` (the last one is unused).
    """
    rng = np.random.default_rng(seed)
    frames, actions = [], []
    for e in range(episodes):
        obs = env.reset(seed=seed + e)
        ep_f, ep_a = [obs[SINGLE]], []
        for _ in range(length - 1):
            a = rng.uniform(-1, 1, env.spec.action_dim).astype(np.float32)
            obs, *_ = env.step(a)
            ep_f.append(obs[SINGLE])
            ep_a.append(a)
        ep_a.append(np.zeros_like(ep_a[-1]))
        frames.append(np.stack(ep_f))
        actions.append(np.stack(ep_a))
    return torch.as_tensor(np.stack(frames)), torch.as_tensor(np.stack(actions))


@torch.no_grad()
def open_loop(
    model: Any, frames: Tensor, actions: Tensor, horizon: int, num_steps: int, seed: int = 0
) -> dict[str, float]:
    """Mean PSNR and SSIM over ``horizon`` predicted frames: model vs copy-last-frame.

    ``frames (E, L, C, Hh, W)`` uint8 with ``L >= K + horizon``; ``actions (E, L, A)``.
    """
    k = model.config.context_size
    gen = torch.Generator().manual_seed(seed)
    window = model.encode(frames[:, :k])
    latents = model.rollout(
        window, actions[:, k - 1 : k - 1 + horizon].float(), num_steps=num_steps, generator=gen
    )["latent"]
    pred = (model.from_latent(latents.flatten(0, 1)) + 1) / 2
    target = frames[:, k : k + horizon].flatten(0, 1).float() / 255
    copy = frames[:, k - 1 : k].expand(-1, horizon, -1, -1, -1).flatten(0, 1).float() / 255
    return {
        "psnr_model": float(psnr(pred, target).mean()),
        "psnr_copy": float(psnr(copy, target).mean()),
        "ssim_model": float(ssim(pred, target).mean()),
        "ssim_copy": float(ssim(copy, target).mean()),
    }


def goal_reaching(
    model: Any, make_env: Any, episodes: int, seed: int, planner: bool
) -> dict[str, float]:
    """Success rate and mean final distance of CEM planning (``planner``) or random actions."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    successes, finals = 0, []
    for e in range(episodes):
        env = make_env()
        obs = env.reset(seed=seed + e)
        goal = torch.as_tensor(env.goal_observation()[SINGLE])[None]
        state, done = None, False
        while not done:
            if planner:
                action, state = model.act(
                    torch.as_tensor(obs[SINGLE])[None], state, goal=goal, eval_mode=True
                )
                a = action[0].numpy()
            else:
                a = rng.uniform(-1, 1, env.spec.action_dim).astype(np.float32)
            obs, _, terminated, truncated = env.step(a)
            done = terminated or truncated
            successes += int(terminated)
        finals.append(env.distance())
    return {"success": successes / episodes, "final_distance": float(np.mean(finals))}


@torch.no_grad()
def context_probe(
    model: Any, frames: Tensor, actions: Tensor, steps: tuple[int, ...], seed: int = 0
) -> list[dict[str, float]]:
    """``x_0`` MSE (clipped estimate, latent units) per diffusion step: true vs shuffled context.

    ``frames (E, L, ...)`` uint8 with ``L >= K + 1`` and ``E >= 2``; the window is frames
    ``0..K-1`` and the target frame ``K`` (reached by ``actions[:, K - 1]``). Rows also give the
    copy-last latent's MSE as a yardstick.
    """
    k, e = model.config.context_size, frames.shape[0]
    gen = torch.Generator().manual_seed(seed)
    z = model.encode(frames[:, : k + 1])
    ctx, x0, act = z[:, :k], z[:, k], actions[:, k - 1].float()
    other = ctx[torch.roll(torch.arange(e), 1)]  # each episode gets its neighbour's context
    rel = torch.full((e,), model.config.rel_t)
    net, process = model.ema.target, model.diffusion
    rows = []
    for step in steps:
        t = torch.full((e,), int(step))
        xt = process.q_sample(x0, t, torch.randn(x0.shape, generator=gen))
        row = {"t": float(step), "copy_last": float((ctx[:, -1] - x0).pow(2).mean())}
        for name, c in (("context", ctx), ("shuffled", other)):
            p = process.p_mean_variance(net(xt, t, act, c, rel), xt, t, clip=True)
            row[name] = float((p["pred_xstart"] - x0).pow(2).mean())
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m worldflux.models.dit.evaluation <model>``: both checks as markdown tables."""
    import argparse

    from worldflux import create_world_model
    from worldflux.envs.embedded import Reach

    parser = argparse.ArgumentParser(description="DiT learning checks on Reach (image)")
    parser.add_argument("model", help="a preset id, a save_pretrained folder or a checkpoint")
    parser.add_argument("--episodes", type=int, default=32, help="held-out open-loop episodes")
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--num-steps", type=int, default=50, help="sampler steps per frame")
    parser.add_argument("--goal-episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=10_000, help="held out: training used 0")
    parser.add_argument(
        "--clip-denoised",
        action="store_true",
        help="clamp x0 estimates to [-1, 1] (pixel latents; for models saved without the field)",
    )
    parser.add_argument("--sampler", choices=("ddpm", "ddim"), default=None)
    parser.add_argument(
        "--blob", type=float, default=0.0, help="Reach's Gaussian blob std (0: the 2x2 square)"
    )
    parser.add_argument("--probe", action="store_true", help="also print the context probe")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = create_world_model(args.model).eval()
    if args.sampler is not None:
        model.config.sampler = args.sampler
    if args.clip_denoised:
        model.config.clip_denoised = True
    size = model.config.obs_shape[-1]
    env = Reach(obs="image", size=size, blob=args.blob)
    k = model.config.context_size
    frames, actions = random_episodes(env, args.episodes, k + args.horizon, args.seed)
    m = open_loop(model, frames, actions, args.horizon, args.num_steps)
    print(
        f"open loop, {args.episodes} held-out episodes, {args.horizon} steps, {args.num_steps} "
        f"{model.config.sampler} steps"
    )
    print("| predictor | PSNR (dB) | SSIM |\n|---|---|---|")
    print(f"| DiT | {m['psnr_model']:.2f} | {m['ssim_model']:.3f} |")
    print(f"| copy last frame | {m['psnr_copy']:.2f} | {m['ssim_copy']:.3f} |")
    if args.probe:
        rows = context_probe(model, frames, actions, (100, 200, 400, 600, 800))
        print("\nx0 MSE of the EMA denoiser on true windows (latent units)")
        print("| t | true context | shuffled context | copy-last |\n|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['t']:.0f} | {r['context']:.4f} | {r['shuffled']:.4f} | {r['copy_last']:.4f} |"
            )

    if args.goal_episodes <= 0:
        return 0

    def make_env() -> Reach:
        return Reach(obs="image", size=size, blob=args.blob)

    cem = goal_reaching(model, make_env, args.goal_episodes, args.seed, planner=True)
    rnd = goal_reaching(model, make_env, args.goal_episodes, args.seed, planner=False)
    print(
        f"\ngoal reaching, {args.goal_episodes} episodes (Reach image, blob {args.blob}, "
        "radius 0.1, 50 steps)"
    )
    print("| agent | success | final distance |\n|---|---|---|")
    print(f"| CEM toward the goal frame | {cem['success']:.2f} | {cem['final_distance']:.3f} |")
    print(f"| random actions | {rnd['success']:.2f} | {rnd['final_distance']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
