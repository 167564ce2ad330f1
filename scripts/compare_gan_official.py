"""Compare worldflux's GameGAN with the official implementation: same weights, inputs and noise.

Usage::

    git --git-dir=<mirror of nv-tlabs/GameGAN_code> archive 1195c39 | tar -x -C /tmp/gamegan
    python scripts/compare_gan_official.py --official /tmp/gamegan [--full]

The official code is imported from ``--official`` (its root, which holds ``config.py``,
``trainer.py`` and ``simulator_model/``); nothing of it is copied into worldflux. For each setting
its ``EngineGenerator`` and ``Discriminator`` are built from its own option parser, their weights
are copied into ours with :func:`worldflux.models.gan.weights.from_reference`, and both get the
same frames, actions, wrong actions and per-step noise ``z``. Compared (max abs difference):

1. eval mode: the generated rollout and every generator loss term (``Trainer.generator_trainstep``
   with ``train=False``);
2. train mode: every discriminator loss term, R1 penalties included
   (``Trainer.discriminator_trainstep``) on that rollout;
3. one whole training update (the reference's generator step with its two Adams, then its
   discriminator step) against our two phases, compared on every parameter afterwards; the
   reference's temporal Adam steps when its generator step returns (:class:`DeferredStep`), which
   lets the memory setting's cycle-loss step run on current torch without changing the update.

Settings are the three presets' code paths at small widths (fast on a CPU); ``--full`` runs the
presets at their real widths (minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from worldflux import get_config
from worldflux.models.gan.module import GameGAN
from worldflux.models.gan.weights import from_reference

ROWS: list[tuple[str, str, float, float]] = []

# name -> (preset, reference options, our overrides, sequence length); small widths by default
SETTINGS: dict[str, tuple[str, list[str], dict[str, Any], int]] = {
    "base": ("gan:base", [], {}, 16),
    "vizdoom": (
        "gan:vizdoom",
        [
            "--data",
            "vizdoom",
            "--num_components",
            "1",
            "--fixed_v_dim",
            "8",
            "--att_dim",
            "8",
            "--config_temporal",
            "24",
            "--nfilterG",
            "32",
            "--end_bias",
            "0.5",
        ],
        {},
        24,
    ),
    "vizdoom_memory": (
        "gan:vizdoom_memory",
        [
            "--data",
            "vizdoom",
            "--num_components",
            "2",
            "--fine_mask",
            "--config_temporal",
            "32",
            "--do_memory",
            "--cycle_loss",
            "--alpha_loss_multiplier",
            "0.000075",
            "--softmax_kernel",
            "--sigmoid_maps",
            "--rev_multiply_map",
            "--temperature",
            "0.1",
            "--nfilterG",
            "16",
            "--spade_index",
            "2",
            "--end_bias",
            "0.5",
            "--simple_blocks",
        ],
        {},
        32,
    ),
}
SMALL = (
    ["--nfilterG", "8", "--nfilterD", "4", "--nfilterD_temp", "8", "--hidden_dim", "64"]
    + ["--memory_dim", "64", "--memory_h", "49", "--fixed_v_dim", "16", "--att_dim", "8"],
    {"nfilter_g": 8, "nfilter_d": 4, "nfilter_d_temporal": 8, "hidden_dim": 64}
    | {"memory_dim": 64, "memory_cells": 49, "fixed_v_dim": 16, "att_dim": 8},
)


def record(setting: str, name: str, official: Any, ours: Any) -> None:
    official = torch.as_tensor(official).detach().float()
    ours = torch.as_tensor(ours).detach().float().reshape(official.shape)
    diff = (official - ours).abs().max().item() if official.numel() else 0.0
    ROWS.append((setting, name, diff, official.abs().max().item()))


def build_official(root: Path, args: list[str], action_dim: int, steps: int, warm_up: int) -> Any:
    sys.path.insert(0, str(root))
    import config as oconfig
    import utils as outils
    from trainer import Trainer

    opts, _ = oconfig.init_parser().parse_args(
        ["x", *args, "--action_space", str(action_dim), "--num_steps", str(steps)]
        + ["--warm_up", str(warm_up), "--img_size", "64"]
    )
    opts.img_size, opts.gpu = (64, 64), -1
    with contextlib.redirect_stdout(io.StringIO()):
        net_g, net_d = outils.build_models(opts)
        opt_t = outils.choose_optimizer(net_g, opts, opts.lrG_temporal, exclude="graphic")
        opt_g = outils.choose_optimizer(net_g, opts, opts.lrG_graphic, include="graphic")
        opt_d = outils.choose_optimizer(net_d, opts, opts.lrD)
    return opts, net_g, net_d, (opt_t, opt_g, opt_d), Trainer, outils


class FixedNoise:
    """Stands in for the reference's ``zdist``: hands out pre-drawn per-step noise."""

    def __init__(self, noise: Tensor) -> None:
        self.noise, self.i = noise, 0

    def sample(self, shape: tuple[int, ...]) -> Tensor:
        out = self.noise[self.i % len(self.noise)]
        self.i += 1
        return out.clone()


class DeferredStep:
    """Stands in for the reference's temporal Adam in its generator step; steps it afterwards.

    With the cycle loss the reference runs ``(total + cycle).backward(retain_graph=True)``, steps
    its temporal Adam, then runs ``total.backward()`` through the same graph for its graphic Adam.
    Current torch refuses the second backward (the temporal parameters it saved were changed in
    place). The second backward only feeds the graphic step (its temporal gradients are zeroed
    before they are used), and what it should give is the gradient of ``total`` at the parameters
    its forward ran with; so this keeps the temporal gradients of the first backward, and steps
    the real temporal Adam with them once the reference's generator step has returned. The update
    is the one the reference's code states: temporal <- Adam(grad(total + cycle)), graphic <-
    Adam(grad(total)), both at the same parameters. (Without the cycle loss the reference steps
    its temporal Adam right after a single backward, and deferring that step changes nothing.)
    """

    def __init__(self, opt: torch.optim.Optimizer) -> None:
        self.opt, self.grads = opt, None  # type: ignore[var-annotated]

    def _params(self) -> list[Tensor]:
        return [p for group in self.opt.param_groups for p in group["params"]]

    def step(self) -> None:
        self.grads = [None if p.grad is None else p.grad.clone() for p in self._params()]

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.opt.zero_grad(set_to_none=set_to_none)

    def flush(self) -> None:
        """Step the real optimiser with the kept gradients (no-op when ``step`` never ran)."""
        if self.grads is None:
            return
        for p, g in zip(self._params(), self.grads):
            p.grad = g
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.grads = None


def fresh(tensors: list[Tensor]) -> list[Tensor]:
    """Copies: the reference's discriminator step sets ``requires_grad`` on its inputs in place."""
    return [x.detach().clone() for x in tensors]


def inputs(b: int, t: int, a: int, z: int, gen: torch.Generator) -> dict[str, Tensor]:
    obs = torch.randint(0, 256, (b, t, 3, 64, 64), dtype=torch.uint8, generator=gen)
    idx = torch.randint(0, min(a, 3), (b, t), generator=gen)
    wrong = (idx + torch.randint(1, min(a, 3), (b, t), generator=gen)) % min(a, 3)
    return {
        "obs": obs,
        "action": torch.nn.functional.one_hot(idx, a).float(),
        "wrong": torch.nn.functional.one_hot(wrong, a).float(),
        "noise": torch.randn(t - 1, b, z, generator=gen),
    }


def ours_for(preset: str, overrides: dict[str, Any], t: int, warm_up: int) -> GameGAN:
    cfg = get_config(preset).to_dict()
    cfg.update(overrides, batch_length=t, warm_up=warm_up, warm_up_decay_updates=0)
    return GameGAN(cfg)


def compare(name: str, root: Path, full: bool, b: int) -> None:
    preset, ref_args, overrides, t = SETTINGS[name]
    ref_args, overrides = list(ref_args), dict(overrides)
    if not full:
        ref_args += SMALL[0]
        overrides.update(SMALL[1])
    warm_up, a = 4, 10
    torch.manual_seed(0)
    opts, net_g, net_d, opts3, trainer_cls, outils = build_official(root, ref_args, a, t, warm_up)
    for m in net_g.modules():  # non-zero attention gains, so the attention path counts
        if hasattr(m, "gamma") and isinstance(m.gamma, torch.nn.Parameter):
            m.gamma.data.fill_(0.3)
    ours = ours_for(preset, overrides, t, warm_up)
    fresh_g, fresh_d = copy.deepcopy(net_g.state_dict()), copy.deepcopy(net_d.state_dict())
    ours.load_state_dict(from_reference(fresh_g, fresh_d))
    ours_fresh = copy.deepcopy(ours.state_dict())
    data = inputs(b, t, a, opts.z, torch.Generator().manual_seed(1))
    frames = ours.frames(data["obs"], 2).transpose(0, 1)  # our [-1, 1] conversion for both
    states = [f.clone() for f in frames]
    actions = [data["action"][:, i + 1] for i in range(t - 1)] + [data["action"][:, 0] * 0]
    wrong = [data["wrong"][:, i + 1] for i in range(t - 1)] + [data["wrong"][:, 0]]
    ours.draw_noise = lambda steps, batch, device: data["noise"]  # type: ignore[method-assign]
    ours._wrong_actions = lambda acts: torch.stack(wrong[:-1])  # type: ignore[method-assign]
    batch = {"obs": data["obs"], "action": data["action"]}

    # 1. eval mode: rollout and generator terms
    tr = trainer_cls(
        opts,
        net_g,
        net_d,
        *opts3,
        opts.gan_type,
        opts.reg_type,
        opts.LAMBDA,
        FixedNoise(data["noise"]),
    )
    ld, _, gout, _, _ = tr.generator_trainstep(
        fresh(states), fresh(actions), warm_up=warm_up, train=False
    )
    ours.eval()
    g = ours._generator_loss(batch)
    record(name, "rollout frames", torch.stack(gout["outputs"]), g.outputs["fake"])
    c = ours.config
    pairs = {
        "g_action": ld["gloss_fake_action"],
        "g_single_frame": ld["gloss_single_frame_loss"],
        "g_temporal": torch.stack(
            [v for k, v in ld.items() if k.startswith("gloss_content_loss")]
        ).mean(),
        "g_z_recon": c.gen_info_loss_multiplier * ld["g_z_recon_loss"],
        "g_action_recon": ld["g_action_recon_loss"],
        "feature_match": c.feature_loss_multiplier * ld["loss_l1_disc_features"],
        "recon": c.recon_loss_multiplier * ld["loss_recon"],
    }
    if "loss_alpha" in ld:
        pairs["alpha"] = c.alpha_loss_multiplier * ld["loss_alpha"]
    if "loss_rev_recon" in ld:
        pairs["cycle"] = c.rev_recon_loss_multiplier * ld["loss_rev_recon"]
    for key, ref in pairs.items():
        record(name, f"G {key}", ref, g.components[key])

    # 2. train mode: discriminator terms on that rollout (before any update)
    ours.train()
    ref_g = dict(g.outputs, fake=torch.cat(gout["outputs"]).detach())
    d = ours._discriminator_loss(ref_g)
    dd = tr.discriminator_trainstep(
        fresh(states), fresh(actions), fresh(wrong), warm_up=warm_up, gout=gout
    )
    dpairs = {
        "d_real_action": dd["dloss_real_action"],
        "d_wrong_action": dd["dloss_real_action_wrong"],
        "d_action_recon": dd["d_action_recon_loss"],
        "d_real_single_frame": dd["dloss_real_single_frame_loss"],
        "d_real_temporal": dd["dloss_real_content_loss"],
        "d_r1": c.r1_weight * dd["dloss_REG"],
        "d_r1_temporal": c.r1_temporal_weight * dd["dloss_REG_temporal"],
        "d_fake_action": dd["dloss_fake_action"],
        "d_fake_single_frame": dd["dloss_fake_single_frame_loss"],
        "d_fake_temporal": dd["dloss_fake_content_loss"],
        "d_z_recon": dd["dloss_fake_z_recon_loss"],
    }
    for key, ref in dpairs.items():
        record(name, f"D {key}", ref, d.components[key])

    # 3. one training update from the same start (train mode, SN power iterations included)
    net_g.load_state_dict(fresh_g)
    net_d.load_state_dict(fresh_d)
    ours.load_state_dict(ours_fresh)
    with contextlib.redirect_stdout(io.StringIO()):
        o_t = outils.choose_optimizer(net_g, opts, opts.lrG_temporal, exclude="graphic")
        o_g = outils.choose_optimizer(net_g, opts, opts.lrG_graphic, include="graphic")
        o_d = outils.choose_optimizer(net_d, opts, opts.lrD)
        tr = trainer_cls(
            opts,
            net_g,
            net_d,
            o_t,
            o_g,
            o_d,
            opts.gan_type,
            opts.reg_type,
            opts.LAMBDA,
            FixedNoise(data["noise"]),
        )
        deferred = DeferredStep(o_t)
        tr.optG_temporal = deferred
        _, _, gout, _, _ = tr.generator_trainstep(fresh(states), fresh(actions), warm_up=warm_up)
        deferred.flush()
        tr.discriminator_trainstep(
            fresh(states), fresh(actions), fresh(wrong), warm_up=warm_up, gout=gout
        )
    ours.train()
    ours.run_update(
        {"generator": batch, "discriminator": batch}, ours.configure_optimizers(), log=False
    )
    after = from_reference(net_g.state_dict(), net_d.state_dict())
    mine = ours.state_dict()

    def is_sn_vector(k: str) -> bool:  # spectral norm's power-iteration vectors (buffers)
        return k.endswith(("weight_u", "weight_v"))

    def worst(keep: Any) -> tuple[float, str]:
        return max(((after[k] - mine[k]).abs().max().item(), k) for k in after if keep(k))

    groups = {
        "generator weights": lambda k: not k.startswith("discriminator.") and not is_sn_vector(k),
        "generator spectral-norm vectors": lambda k: (
            not k.startswith("discriminator.") and is_sn_vector(k)
        ),
        "discriminator weights": lambda k: k.startswith("discriminator."),
    }
    for label, keep in groups.items():
        diff, key = worst(keep)
        ROWS.append(
            (
                name,
                f"after 1 update: {label} (worst {key})",
                diff,
                after[key].abs().max().item(),
            )
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official", required=True, help="checkout of nv-tlabs/GameGAN_code @ 1195c39")
    p.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--full", action="store_true", help="the presets' real widths (slow)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print("| setting | quantity | max abs diff | max abs value |\n|---|---|---|---|", flush=True)
    for name in args.settings:
        done = len(ROWS)
        try:
            compare(name, Path(args.official), args.full, args.batch)
        except RuntimeError as err:  # keep the rows recorded before the failure
            reason = str(err).splitlines()[0].replace("|", "/")[:160]
            ROWS.append((name, f"stopped: {reason}", float("nan"), float("nan")))
        for setting, quantity, diff, scale in ROWS[done:]:
            print(f"| {setting} | {quantity} | {diff:.3g} | {scale:.3g} |", flush=True)


if __name__ == "__main__":
    main()
