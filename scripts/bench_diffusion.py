"""Speed of the diffusion family (DIAMOND) on this machine, optionally against the reference.

Usage::

    python scripts/bench_diffusion.py [--official /tmp/diamond] [--batch 32] [--repeat 3]

Measures, for ``diffusion:base`` (64x64x3, 4 actions) on CPU: frames generated per second by the
world-model environment's sampler (3 Euler steps, batch ``--batch``), and the wall time of one
update of each phase (forward, backward, AdamW step) at batch ``--batch`` with the reference's
sequence lengths (denoiser 6 frames, reward/termination 19, actor-critic 4 + horizon 15). With
``--official`` (the checkout root of eloialonso/diamond @ 5bcd159, importable as in
``scripts/compare_diffusion_official.py``) the reference code is timed in the same run on the same
inputs. Prints a Markdown table (median of ``--repeat`` runs after one warm-up).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from worldflux import create_world_model
from worldflux.models.diffusion.denoiser import sample_next


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ours_rows(b: int, repeat: int) -> dict[str, float]:
    model = create_world_model("diffusion:base")
    opts = model.configure_optimizers()
    obs = torch.randint(0, 256, (b, 19, 3, 64, 64), dtype=torch.uint8)
    act = F.one_hot(torch.randint(0, 4, (b, 19)), 4).float()
    first = torch.zeros(b, 19, dtype=torch.bool)
    first[:, 0] = True
    full = {
        "obs": obs,
        "action": act,
        "first": first,
        "reward": torch.zeros(b, 19),
        "terminal": torch.zeros(b, 19, dtype=torch.bool),
    }
    lengths = {"denoiser": 6, "rew_end_model": 19, "actor_critic": 4}
    out = {}
    for i, (phase, t) in enumerate(lengths.items()):
        batch = {k: v[:, :t] for k, v in full.items()}

        def step(phase=phase, batch=batch, opt=opts[i]) -> None:
            opt.zero_grad()
            model.phase_loss(phase, batch, {}).total.backward()
            opt.step()

        out[f"one {phase} update (batch {b})"] = timed(step, repeat)
    frames = obs[:, :4].float() / 127.5 - 1
    acts = torch.randint(0, 4, (b, 4))
    s = model.sampler_settings()
    with torch.no_grad():  # as the reference's sampler and the model's imagination run it
        sec = timed(lambda: sample_next(model.denoiser, frames.flatten(1, 2), acts, s), repeat)
    out["frames/s, 3 Euler steps"] = b / sec
    return out


def official_rows(path: str, b: int, repeat: int) -> dict[str, float]:
    sys.path.insert(0, str(Path(__file__).parent))
    from compare_diffusion_official import build_official, import_official

    off = import_official(path)
    import envs.world_model_env as wme  # the stand-in package makes this importable

    agent = build_official(off, 4)
    agent.denoiser.setup_training(off.diff.SigmaDistributionConfig(-0.4, 1.2, 2e-3, 20))
    frames = torch.randint(0, 256, (b, 19, 3, 64, 64)).float() / 127.5 - 1
    act = torch.randint(0, 4, (b, 19))

    def batch(t: int):
        return off.Batch(
            frames[:, :t],
            act[:, :t],
            torch.zeros(b, t),
            torch.zeros(b, t).long(),
            torch.zeros(b, t).long(),
            torch.ones(b, t, dtype=torch.bool),
            [{}] * b,
            [None] * b,
        )

    class Loader:  # the world-model env's initial conditions: 4-frame segments
        batch_sampler = SimpleNamespace(batch_size=b)

        def __iter__(self):
            while True:
                yield batch(4)

    sampler_cfg = off.diff.DiffusionSamplerConfig(num_steps_denoising=3)
    env = wme.WorldModelEnv(
        agent.denoiser, agent.rew_end_model, Loader(), wme.WorldModelEnvConfig(15, 1, sampler_cfg)
    )
    agent.actor_critic.setup_training(
        env, off.ac.ActorCriticLossConfig(15, 0.985, 0.95, 1.0, 0.001)
    )
    out = {}
    for name, module, call, _t in (
        ("denoiser", agent.denoiser, lambda: agent.denoiser(batch(6)), 6),
        ("rew_end_model", agent.rew_end_model, lambda: agent.rew_end_model(batch(19)), 19),
        ("actor_critic", agent.actor_critic, lambda: agent.actor_critic(), 4),
    ):
        wd = 0.0 if name == "actor_critic" else 1e-2
        opt = off.configure_opt(module, 1e-4, wd, 1e-8)

        def step(call=call, opt=opt) -> None:
            opt.zero_grad()
            call()[0].backward()
            opt.step()

        out[f"one {name} update (batch {b})"] = timed(step, repeat)
    sampler = off.diff.DiffusionSampler(agent.denoiser, sampler_cfg)
    sec = timed(lambda: sampler.sample(frames[:, :4], act[:, :4]), repeat)
    out["frames/s, 3 Euler steps"] = b / sec
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--official", default=None, help="checkout root of eloialonso/diamond")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours = ours_rows(args.batch, args.repeat)
    ref = official_rows(args.official, args.batch, args.repeat) if args.official else {}
    print(f"| quantity (CPU, {args.threads} thread(s)) | worldflux | reference |")
    print("|---|---|---|")
    for key, value in ours.items():
        unit = "" if key.startswith("frames") else " s"
        other = f"{ref[key]:.3g}{unit}" if key in ref else "-"
        print(f"| {key} | {value:.3g}{unit} | {other} |")


if __name__ == "__main__":
    main()
