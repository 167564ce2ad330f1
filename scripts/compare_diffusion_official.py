"""Compare worldflux's diffusion family with DIAMOND's code: same weights, inputs and noise.

Usage::

    git --git-dir=<mirror of eloialonso/diamond> archive 5bcd159 | tar -x -C /tmp/diamond
    pip install torcheval==0.0.7      # the reference's reward/termination module imports it
    python scripts/compare_diffusion_official.py --official /tmp/diamond

The reference is imported from ``--official`` (the checkout root); nothing of it is copied into
worldflux. Its ``Agent`` is built from its own ``config/agent/default.yaml`` (64x64x3, 4 actions);
the modules that only serve environments (``envs``, ``wandb``) are replaced by empty stand-ins,
since no environment runs here. The reference weights are perturbed (zero-initialised layers
would make the comparison trivial), saved in the reference's layout (``Agent.state_dict()``, the
layout of the released ``atari_100k/models/<Game>.pt``) and loaded as a user loads a released
agent, ``create_world_model("diffusion:base", weights=path)`` (the action count read from the
file); then both codes get identical inputs
and identical random draws (``torch.manual_seed`` before each call: the two draw their random
numbers in the same order). Prints a table of max abs differences.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from worldflux import create_world_model
from worldflux.models.diffusion.agent import lambda_returns
from worldflux.models.diffusion.denoiser import sample_next

ROWS: list[tuple[str, float, float]] = []


def record(name: str, official: Any, ours: Any) -> None:
    official, ours = torch.as_tensor(official).float(), torch.as_tensor(ours).float()
    diff = (official - ours.reshape(official.shape)).abs().max().item() if official.numel() else 0.0
    ROWS.append((name, diff, official.abs().max().item()))


def import_official(path: str) -> SimpleNamespace:
    src = Path(path) / "src"
    sys.path.insert(0, str(src))
    sys.modules.setdefault("wandb", types.ModuleType("wandb"))
    envs = types.ModuleType("envs")  # the package __init__ needs gymnasium, ale_py and cv2
    envs.__path__ = [str(src / "envs")]  # type: ignore[attr-defined]
    envs.TorchEnv = envs.WorldModelEnv = object  # type: ignore[attr-defined]
    sys.modules["envs"] = envs
    import models.actor_critic as ac
    import models.diffusion as diff
    import models.rew_end_model as rem
    from agent import Agent, AgentConfig
    from data import Batch
    from omegaconf import OmegaConf
    from utils import configure_opt

    return SimpleNamespace(
        root=Path(path),
        OmegaConf=OmegaConf,
        Agent=Agent,
        AgentConfig=AgentConfig,
        Batch=Batch,
        diff=diff,
        rem=rem,
        ac=ac,
        configure_opt=configure_opt,
    )


def build_official(off: SimpleNamespace, num_actions: int) -> Any:
    raw = off.OmegaConf.load(off.root / "config" / "agent" / "default.yaml")
    d, r, a = raw.denoiser, raw.rew_end_model, raw.actor_critic
    inner = off.diff.InnerModelConfig(
        img_channels=3,
        num_steps_conditioning=d.inner_model.num_steps_conditioning,
        cond_channels=d.inner_model.cond_channels,
        depths=list(d.inner_model.depths),
        channels=list(d.inner_model.channels),
        attn_depths=list(d.inner_model.attn_depths),
    )
    cfg = off.AgentConfig(
        denoiser=off.diff.DenoiserConfig(inner, d.sigma_data, d.sigma_offset_noise),
        rew_end_model=off.rem.RewEndModelConfig(
            lstm_dim=r.lstm_dim,
            img_channels=3,
            img_size=64,
            cond_channels=r.cond_channels,
            depths=list(r.depths),
            channels=list(r.channels),
            attn_depths=list(r.attn_depths),
        ),
        actor_critic=off.ac.ActorCriticConfig(
            lstm_dim=a.lstm_dim,
            img_channels=3,
            img_size=64,
            channels=list(a.channels),
            down=list(a.down),
        ),
        num_actions=num_actions,
    )
    return off.Agent(cfg)


def compare(off: SimpleNamespace, num_actions: int, b: int = 4) -> None:
    torch.manual_seed(0)
    agent = build_official(off, num_actions)
    tag = f"{num_actions} actions"
    with torch.no_grad():
        for p in agent.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    with tempfile.TemporaryDirectory() as tmp:
        # the layout of the released atari_100k/models/<Game>.pt: the Agent's state dict; loaded
        # as a user loads a released agent, the action count read from the file
        torch.save(agent.state_dict(), Path(tmp) / "agent.pt")
        ours = create_world_model("diffusion:base", weights=Path(tmp) / "agent.pt")
    record(f"{tag}: actions read from the file", num_actions, ours.config.action_dim)
    for name in ("denoiser", "rew_end_model", "actor_critic"):
        n_off = sum(p.numel() for p in getattr(agent, name).parameters())
        n_our = sum(p.numel() for p in getattr(ours, name).parameters())
        record(f"{tag}: {name} parameters ({n_off:,})", n_off, n_our)
    agent.eval(), ours.eval()
    n = 4
    gen = torch.Generator().manual_seed(1)
    frames_u8 = torch.randint(0, 256, (b, 19, 3, 64, 64), dtype=torch.uint8, generator=gen)
    frames = frames_u8.float() / 255.0 * 2 - 1
    act = torch.randint(0, num_actions, (b, 19), generator=gen)
    # worldflux batch: action[t] led to obs[t], i.e. the reference's act[t - 1]
    wf_action = torch.nn.functional.one_hot(
        torch.cat([act[:, :1] * 0, act[:, :-1]], 1), num_actions
    ).float()
    first = torch.zeros(b, 19, dtype=torch.bool)
    first[:, 0] = True

    # denoiser forward and the EDM loss (one autoregressive step)
    od, wd = agent.denoiser, ours.denoiser
    sigma = torch.rand(b) * 3 + 0.01
    obs = frames[:, :n].reshape(b, -1, 64, 64)
    noisy = frames[:, n] + torch.randn(b, 3, 64, 64) * sigma.view(-1, 1, 1, 1)
    cs_o = od.compute_conditioners(sigma)
    cs_w = wd.conditioners(sigma)
    out_o = od.compute_model_output(noisy, obs, act[:, :n], cs_o)
    out_w = wd(noisy, obs, act[:, :n], cs_w)
    record(f"{tag}: denoiser raw output", out_o, out_w)
    record(
        f"{tag}: denoised frame",
        od.wrap_model_output(noisy, out_o, cs_o),
        wd.wrap(noisy, out_w, cs_w),
    )
    od.setup_training(off.diff.SigmaDistributionConfig(-0.4, 1.2, 2e-3, 20))
    seq = 6
    batch = off.Batch(
        frames[:, :seq],
        act[:, :seq],
        torch.zeros(b, seq),
        torch.zeros(b, seq).long(),
        torch.zeros(b, seq).long(),
        torch.ones(b, seq, dtype=torch.bool),
        [{}] * b,
        [None] * b,
    )
    torch.manual_seed(7)
    loss_o, _ = od(batch)
    wf = {"obs": frames_u8[:, :seq], "action": wf_action[:, :seq], "first": first[:, :seq]}
    torch.manual_seed(7)
    loss_w = ours.denoiser_loss(wf).total
    record(f"{tag}: EDM loss (2 targets)", loss_o, loss_w)

    # sampler trajectories: Euler 3 steps (the default) and Heun
    for order, name in ((1, "Euler"), (2, "Heun")):
        cfg = off.diff.DiffusionSamplerConfig(num_steps_denoising=3, order=order)
        sampler = off.diff.DiffusionSampler(od, cfg)
        torch.manual_seed(3)
        x_o, traj_o = sampler.sample(frames[:, :n], act[:, :n])
        torch.manual_seed(3)
        ours.config.sampler = "euler" if order == 1 else "heun"
        x_w, traj_w = sample_next(
            wd, frames[:, :n].flatten(1, 2), act[:, :n], ours.sampler_settings(3)
        )
        record(f"{tag}: {name} 3-step trajectory", torch.stack(traj_o), torch.stack(traj_w))
    ours.config.sampler = "euler"

    # reward/termination logits and loss on a 19-frame segment
    rm = agent.rew_end_model
    lr_o, le_o, _ = rm.predict_rew_end(frames[:, :-1], act[:, :-1], frames[:, 1:])
    lr_w, le_w, _ = ours.rew_end_model(frames[:, :-1], act[:, :-1], frames[:, 1:])
    record(f"{tag}: reward logits", lr_o, lr_w)
    record(f"{tag}: termination logits", le_o, le_w)
    rew = torch.randint(-1, 2, (b, 19)).float()
    end = torch.zeros(b, 19).long()
    batch = off.Batch(
        frames,
        act,
        rew,
        end,
        end.clone(),
        torch.ones(b, 19, dtype=torch.bool),
        [{}] * b,
        [None] * b,
    )
    loss_o, _ = rm(batch)
    wf = {
        "obs": frames_u8,
        "action": wf_action,
        "first": first,
        "terminal": torch.zeros(b, 19, dtype=torch.bool),
        "reward": torch.cat([rew[:, :1] * 0, rew[:, :-1]], 1),
    }
    record(f"{tag}: reward/termination loss", loss_o, ours.rew_end_loss(wf).total)

    # actor-critic outputs over a few steps, and lambda-returns
    hc_o = hc_w = (torch.randn(b, 512), torch.randn(b, 512))
    for t in range(3):
        lo, vo, hc_o = agent.actor_critic.predict_act_value(frames[:, t], hc_o)
        lw, vw, hc_w = ours.actor_critic(frames[:, t], hc_w)
        record(f"{tag}: actor logits step {t}", lo, lw)
        record(f"{tag}: critic value step {t}", vo, vw)
    rew, end = torch.randn(b, 15), (torch.rand(b, 15) < 0.1).float()
    trunc = torch.zeros(b, 15)
    trunc[:, -1] = 1
    boot = torch.randn(b, 15)
    record(
        f"{tag}: lambda-returns",
        off.ac.compute_lambda_returns(rew, end, trunc, boot, 0.985, 0.95),
        lambda_returns(rew, end, trunc, boot, 0.985, 0.95),
    )

    # weight-decay grouping of the denoiser and reward/termination optimisers
    opts = ours.configure_optimizers()
    names = {id(p): k for k, p in ours.named_parameters()}
    for i, part in enumerate(("denoiser", "rew_end_model")):
        off_opt = off.configure_opt(getattr(agent, part), 1e-4, 1e-2, 1e-8)
        off_names = {id(p): k for k, p in getattr(agent, part).named_parameters()}
        decay_o = {
            off_names[id(p)]
            for g in off_opt.param_groups
            if g["weight_decay"] > 0
            for p in g["params"]
        }
        decay_w = {
            names[id(p)].split(".", 1)[1]
            for g in opts[i].param_groups
            if g["weight_decay"] > 0
            for p in g["params"]
        }
        record(f"{tag}: {part} decayed tensors ({len(decay_o)}) differ", 0, len(decay_o ^ decay_w))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--official", required=True, help="checkout root of eloialonso/diamond @ 5bcd159"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    off = import_official(args.official)
    for num_actions in (4, 18):
        compare(off, num_actions)
    width = max(len(r[0]) for r in ROWS)
    print(f"| {'quantity'.ljust(width)} | max abs diff | max abs (reference) |")
    print(f"|{'-' * (width + 2)}|---|---|")
    for name, diff, scale in ROWS:
        print(f"| {name.ljust(width)} | {diff:.3g} | {scale:.4g} |")


if __name__ == "__main__":
    main()
