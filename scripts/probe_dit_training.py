"""Short DiT training diagnostics on Reach (blob): does the denoiser read its context, and when?

Usage::

    python scripts/probe_dit_training.py --updates 2000 --every 500                # dit:ci as is
    python scripts/probe_dit_training.py --set pos_embed_init=normal               # NWM's start
    python scripts/probe_dit_training.py --pos-std 1.0 --set pos_embed_init=normal
    python scripts/probe_dit_training.py --updates 4000 --save /tmp/dit4k.pt

Trains ``dit:ci`` (with ``--set field=value`` overrides, values parsed as YAML) in this process
with the model's own ``loss`` on a fixed set of random-action Reach episodes (image, Gaussian
blob; ``--episodes`` of 50 steps, seed 0), batches of ``--batch`` sequences of ``--length``
frames, AdamW (the preset's lr, weight decay 0), gradient clipping 10 and the EMA update after
every step, as ``python -m worldflux.train`` does. Every ``--every`` updates it prints the mean
loss of the last 100 updates, the context probe (:func:`worldflux.models.dit.evaluation.
context_probe`: the EMA denoiser's ``x_0`` MSE at t = 200, 400, 600, 800 with the true and with
another episode's context, and the copied last frame's) on 32 held-out episodes (seed 10,000),
and the open-loop PSNR / SSIM over 8 steps on 16 of them (``--num-steps`` DDPM steps a frame)
against copying the last frame. ``--pos-std`` redraws the positional embedding from
``N(0, pos-std)`` before training. ``--save`` writes the model's state dict at the end.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import yaml

from worldflux import create_world_model
from worldflux.envs.embedded import Reach
from worldflux.models.dit.evaluation import context_probe, open_loop, random_episodes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--set", action="append", default=[], help="config override field=value")
    p.add_argument("--updates", type=int, default=2000)
    p.add_argument("--every", type=int, default=500)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=8)
    p.add_argument("--episodes", type=int, default=80, help="training episodes of 50 steps")
    p.add_argument("--blob", type=float, default=0.3)
    p.add_argument("--num-steps", type=int, default=20, help="DDPM steps a frame (open loop)")
    p.add_argument("--pos-std", type=float, default=0.0)
    p.add_argument("--save", default=None)
    a = p.parse_args()
    torch.manual_seed(0)
    over = {}
    for item in a.set:
        key, _, value = item.partition("=")
        over[key] = yaml.safe_load(value)
    model = create_world_model("dit:ci", **over)
    if a.pos_std > 0:
        with torch.no_grad():
            torch.nn.init.normal_(model.denoiser.pos_embed, std=a.pos_std)
            model.ema.target.load_state_dict(model.denoiser.state_dict())
    make = lambda: Reach(obs="image", size=16, blob=a.blob)  # noqa: E731
    frames, actions = random_episodes(make(), a.episodes, 50, seed=0)
    # random_episodes pairs action i with frame i -> i + 1; the replay's action t led to frame t
    led_to = torch.cat([torch.zeros_like(actions[:, :1]), actions[:, :-1]], 1)
    held_f, held_a = random_episodes(make(), 32, 12, seed=10_000)
    net = model.denoiser
    opt = torch.optim.AdamW(net.parameters(), lr=model.config.lr, weight_decay=0.0)
    rng = np.random.default_rng(0)
    start, losses = time.time(), []
    for update in range(1, a.updates + 1):
        ep = rng.integers(0, a.episodes, a.batch)
        at = rng.integers(0, 50 - a.length + 1, a.batch)
        batch = {
            "obs": torch.stack([frames[e, s : s + a.length] for e, s in zip(ep, at)]),
            "action": torch.stack([led_to[e, s : s + a.length] for e, s in zip(ep, at)]),
            "first": torch.zeros(a.batch, a.length, dtype=torch.bool),
        }
        out = model.loss(batch)
        opt.zero_grad()
        out.total.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        opt.step()
        model.after_phase("denoiser")
        losses.append(float(out.total.detach()))
        if update % a.every == 0 or update == a.updates:
            model.eval()
            rows = context_probe(model, held_f, held_a, (200, 400, 600, 800))
            m = open_loop(model, held_f[:16], held_a[:16], horizon=8, num_steps=a.num_steps)
            probe = " ".join(f"t{r['t']:.0f} {r['context']:.4f}/{r['shuffled']:.4f}" for r in rows)
            print(
                f"[{update} updates, {time.time() - start:.0f} s] loss {np.mean(losses[-100:]):.4f}"
                f" | probe true/shuffled {probe} copy {rows[0]['copy_last']:.4f} | open loop "
                f"PSNR {m['psnr_model']:.2f} (copy {m['psnr_copy']:.2f}) SSIM "
                f"{m['ssim_model']:.3f} (copy {m['ssim_copy']:.3f})",
                flush=True,
            )
            model.train()
    if a.save:
        torch.save(model.state_dict(), a.save)


if __name__ == "__main__":
    main()
