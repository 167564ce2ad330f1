"""Compare worldflux's DiT with Navigation World Models' CDiT: same weights, inputs and noise.

Usage::

    git --git-dir=<mirror of facebookresearch/nwm> archive 3f6cd8e | tar -x -C /tmp/nwm
    pip install timm diffusers         # what nwm's models.py and diffusion/ import
    python scripts/compare_dit_official.py --official /tmp/nwm

The reference is imported from ``--official`` (its ``models.py`` and ``diffusion/``); nothing of
it is copied into worldflux. A small CDiT (depth 2, width 64, 4 heads, context 4, 4 x 8 x 8
latents, 3-d actions) is built by both codes; the reference's weights are perturbed (its adaLN and
output layers start at zero, which would hide differences), saved as NWM's ``train.py`` saves a
checkpoint (``{"model", "ema", "opt", "args", ...}``) and loaded into ours as a user loads a
released checkpoint, ``create_world_model("dit:ci", weights=path, ...)`` (its EMA weights). Then, with identical inputs and ``torch.manual_seed``
before each call (both codes draw their noise in the same order):

- one CDiT forward;
- the diffusion training loss (per-sample MSE, VLB and total) from ``create_diffusion("")``;
- one DDPM sampling step and a full 10-step sampling loop of ``create_diffusion("10")``,
  and the same with DDIM (``ddim_sample``).

Prints a table of max absolute differences (float32 rounding is ~1e-6 relative).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from worldflux import create_world_model

ROWS: list[tuple[str, float, float]] = []


def record(name: str, ref: torch.Tensor, ours: torch.Tensor) -> None:
    ref, ours = ref.detach().float(), ours.detach().float().reshape(ref.shape)
    ROWS.append((name, (ref - ours).abs().max().item(), ref.abs().max().item()))


def save_nwm_checkpoint(ref: torch.nn.Module, path: Path) -> Path:
    """Save ``ref`` the way NWM's ``train.py`` saves a checkpoint: ``{"model", "ema", "opt",
    "args", "epoch", "train_steps"}``, the trained model compiled (``_orig_mod.`` keys) and
    different from the EMA copy, which is the one NWM evaluates (and ours must load)."""
    trained = {f"_orig_mod.{k}": v + 1.0 for k, v in ref.state_dict().items()}
    opt = torch.optim.AdamW(ref.parameters(), lr=8e-5, weight_decay=0)
    args = argparse.Namespace(config="config/nwm_cdit_xl.yaml", torch_compile=1, ckpt_every=2000)
    checkpoint = {"model": trained, "ema": ref.state_dict(), "opt": opt.state_dict(),
                  "args": args, "epoch": 3, "train_steps": 2000}  # fmt: skip
    torch.save(checkpoint, path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", required=True, help="root of a facebookresearch/nwm checkout")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.official).resolve()))
    from diffusion import create_diffusion  # the reference's diffusion package
    from models import CDiT as RefCDiT

    torch.manual_seed(args.seed)
    k, c, s, a, b = 4, 4, 8, 3, 3
    ref = RefCDiT(
        input_size=s,
        context_size=k,
        patch_size=2,
        in_channels=c,
        hidden_size=64,
        depth=2,
        num_heads=4,
        learn_sigma=True,
    ).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    with tempfile.TemporaryDirectory() as tmp:
        path = save_nwm_checkpoint(ref, Path(tmp) / "latest.pth.tar")
        ours = create_world_model(
            "dit:ci",
            weights=path,  # loaded as a user loads a released NWM checkpoint (its EMA weights)
            obs_shape=[c, s, s],
            action_dim=a,
            patch_size=2,  # NWM's patch (dit:ci itself uses 4)
            hidden_size=64,
            depth=2,
            num_heads=4,
            ema_decay=0.0,
            clip_denoised=False,  # NWM samples its latents unclipped
        ).eval()

    x = torch.randn(b, c, s, s)
    ctx = torch.randn(b, k, c, s, s)
    y = torch.randn(b, a)
    rel_t = torch.rand(b)
    t = torch.tensor([0, 17, 999])
    with torch.no_grad():
        record("CDiT forward (B=3)", ref(x, t, y, ctx, rel_t), ours.denoiser(x, t, y, ctx, rel_t))

    kwargs = dict(y=y, x_cond=ctx, rel_t=rel_t)
    ref_diff = create_diffusion("")
    noise = torch.randn_like(x)
    ref_terms = ref_diff.training_losses(ref, x, t, kwargs, noise=noise)

    def net(xt: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        return ours.denoiser(xt, ts, y, ctx, rel_t)

    our_terms = ours.diffusion.training_losses(net, x, t, noise)
    for key in ("mse", "vb", "loss"):
        record(f"diffusion loss: {key} per sample", ref_terms[key], our_terms[key])

    # NWM samples its latents unclipped; clipped x0 (dit:ci's pixels) is the reference's option too
    for clip, sampler in [(c, sp) for c in (False, True) for sp in ("ddpm", "ddim")]:
        tag = ", clip_denoised" if clip else ""
        ref_sp = create_diffusion("10")
        process = ours._sampling_process(10)
        ti = torch.full((b,), 9, dtype=torch.long)
        step = ref_sp.p_sample if sampler == "ddpm" else ref_sp.ddim_sample
        with torch.no_grad():
            torch.manual_seed(1)
            r = step(ref, x, ti, clip_denoised=clip, model_kwargs=kwargs)["sample"]
            torch.manual_seed(1)
            o = process.step(net, x, 9, sampler, clip=clip)
        record(f"one {sampler} step (10-step process){tag}", r, o)
        loop = ref_sp.p_sample_loop if sampler == "ddpm" else ref_sp.ddim_sample_loop
        with torch.no_grad():
            torch.manual_seed(2)
            r = loop(
                ref.forward, x.shape, x, clip_denoised=clip, model_kwargs=kwargs, device=x.device
            )
            torch.manual_seed(2)
            o = process.sample(net, x, sampler, clip=clip)
        record(f"{sampler} sampling loop, 10 steps{tag}", r, o)

    width = max(len(r[0]) for r in ROWS)
    print(f"| {'quantity'.ljust(width)} | max abs diff | max abs value |")
    print(f"|{'-' * (width + 2)}|---|---|")
    for name, diff, scale in ROWS:
        print(f"| {name.ljust(width)} | {diff:.2e} | {scale:.3g} |")
    worst = max(d / max(v, 1.0) for _, d, v in ROWS)
    print(f"worst relative difference: {worst:.2e}")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
