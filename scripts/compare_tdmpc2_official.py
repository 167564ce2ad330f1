"""Compare worldflux's TD-MPC2 with the official implementation: same weights, same inputs.

Usage::

    git --git-dir=<mirror of nicklashansen/tdmpc2> archive e9f59321933cbc8e11a002b842adc7d4ffae8ff1 \\
        | tar -x -C /tmp/tdmpc2_official
    pip install tensordict -c constraints-cpu.txt     # the official world model needs it
    python scripts/compare_tdmpc2_official.py --official /tmp/tdmpc2_official

The official code is imported from ``--official`` (the checkout root, or its ``tdmpc2/`` folder);
nothing of it is copied into worldflux. Its ``WorldModel`` is built from its own ``config.yaml``
with ``MODEL_SIZE[5]``; its agent methods (``_update``, ``update_pi``, ``_td_target``, ``_plan``,
``_estimate_value``) are called unchanged on a CPU stand-in for ``TDMPC2`` (its ``__init__``
hard-codes CUDA and ``torch.compile``): the stand-in holds the model, the two Adam optimisers with
the official parameter groups (``capturable=False`` on CPU), the running scale and the discount.

The official weights are perturbed (so that the zero-initialised reward and Q output layers and the
unit LayerNorm gains are not trivial), saved as the official trainer saves them and loaded into ours by
``create_world_model("tdmpc2:5m", weights=<file>)`` (the mapping of
:mod:`worldflux.models.tdmpc2.weights`; the spaces come from the file), then both are
fed identical inputs and identical random draws (``torch.manual_seed`` before each call; the two
codes draw their random numbers in the same order). Prints a table of max abs differences.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor, nn

from worldflux import create_world_model
from worldflux.models.tdmpc2.losses import soft_ce
from worldflux.models.tdmpc2.weights import SKIPPED, official_to_ours

ROWS: list[tuple[str, str, float, float]] = []


def record(setting: str, name: str, official: Tensor, ours: Tensor) -> None:
    official, ours = torch.as_tensor(official).float(), torch.as_tensor(ours).float()
    if official.shape != ours.shape:
        ours = ours.reshape(official.shape)
    diff = (official - ours).abs().max().item() if official.numel() else 0.0
    ROWS.append((setting, name, diff, official.abs().max().item()))


# ---------------------------------------------------------------------------- the official code
def import_official(path: str) -> SimpleNamespace:
    root = Path(path)
    pkg = root / "tdmpc2" if (root / "tdmpc2" / "common").is_dir() else root
    sys.path.insert(0, str(pkg))
    import common as ocommon
    from common import math as omath
    from common.parser import cfg_to_dataclass
    from common.scale import RunningScale
    from common.world_model import WorldModel
    from omegaconf import OmegaConf
    from tdmpc2 import TDMPC2

    return SimpleNamespace(
        pkg=pkg,
        OmegaConf=OmegaConf,
        common=ocommon,
        math=omath,
        cfg_to_dataclass=cfg_to_dataclass,
        RunningScale=RunningScale,
        WorldModel=WorldModel,
        TDMPC2=TDMPC2,
    )


def official_cfg(off: SimpleNamespace, setting: dict[str, Any], batch: int) -> Any:
    """The official config for ``setting``, as ``parse_cfg`` would derive it (minus Hydra)."""
    raw = off.OmegaConf.load(off.pkg / "config.yaml")
    del raw["defaults"]
    raw.model_size = 5
    for k, v in off.common.MODEL_SIZE[5].items():
        raw[k] = v
    raw.task = setting["task"]
    raw.obs = "state"
    raw.multitask = raw.task in off.common.TASK_SET
    raw.tasks = off.common.TASK_SET.get(raw.task, [raw.task])
    raw.task_dim = 96 if raw.multitask else 0  # mt80 (and 1M/317M mt30) use 96
    raw.bin_size = (raw.vmax - raw.vmin) / (raw.num_bins - 1)
    raw.obs_shape = {"state": [setting["obs"]]}
    raw.action_dim = setting["action_dim"]
    raw.episode_length = 1000
    raw.episodic = setting.get("episodic", False)
    if raw.multitask:
        raw.action_dims = setting["action_dims"]
        raw.episode_lengths = setting["episode_lengths"]
        raw.obs_shapes = [[setting["obs"]]] * len(raw.tasks)
    raw.compile = False
    raw.batch_size = batch
    return off.cfg_to_dataclass(raw)


def official_agent(off: SimpleNamespace, cfg: Any, model: Any) -> Any:
    """A CPU stand-in for the official ``TDMPC2`` whose methods are the official ones."""
    agent = off.TDMPC2.__new__(off.TDMPC2)
    nn.Module.__init__(agent)
    agent.cfg, agent.device, agent.model = cfg, torch.device("cpu"), model
    m = model
    agent.optim = torch.optim.Adam(  # the groups of TDMPC2.__init__
        [
            {"params": m._encoder.parameters(), "lr": cfg.lr * cfg.enc_lr_scale},
            {"params": m._dynamics.parameters()},
            {"params": m._reward.parameters()},
            {"params": m._termination.parameters() if cfg.episodic else []},
            {"params": m._Qs.parameters()},
            {"params": m._task_emb.parameters() if cfg.multitask else []},
        ],
        lr=cfg.lr,
    )
    agent.pi_optim = torch.optim.Adam(m._pi.parameters(), lr=cfg.lr, eps=1e-5)
    scale = off.RunningScale.__new__(off.RunningScale)
    nn.Module.__init__(scale)
    scale.cfg = cfg
    scale.value = nn.Buffer(torch.ones(1))
    scale._percentiles = nn.Buffer(torch.tensor([5.0, 95.0]))
    agent.scale = scale
    if cfg.multitask:
        agent.discount = torch.tensor([agent._get_discount(n) for n in cfg.episode_lengths])
    else:
        agent.discount = agent._get_discount(cfg.episode_length)
    agent._prev_mean = nn.Buffer(torch.zeros(cfg.horizon, cfg.action_dim))
    return agent


# ---------------------------------------------------------------------------- weight mapping
def official_file(official: Any, folder: str) -> str:
    """The official model saved the way ``TDMPC2.save`` does: ``{"model": state_dict}``."""
    path = os.path.join(folder, "official.pt")
    torch.save({"model": official.state_dict()}, path)
    return path


@torch.no_grad()
def perturb(model: nn.Module, gen: torch.Generator) -> None:
    """Random non-trivial weights (in place, so the official detached alias follows)."""
    sd = model.state_dict()
    for key, p in sd.items():
        if not isinstance(p, Tensor) or not p.is_floating_point() or key.startswith(SKIPPED):
            continue
        if p.device.type == "meta":
            continue
        noise = torch.randn(p.shape, generator=gen)
        if key.endswith("ln.weight"):
            p.copy_(1.0 + 0.2 * noise)
        elif key.endswith(("bias", "ln.bias")):
            p.add_(0.05 * noise)
        elif p.dim() >= 2 and p.shape[-1] >= 1:
            fan_in = p.shape[-1]
            p.copy_(noise / fan_in**0.5)
        else:
            p.add_(0.05 * noise)


def no_dropout(official: Any, ours: Any) -> None:
    """Switch the Q dropout off in both (its masks are drawn differently: vmap vs one tensor)."""
    for m in official.modules():
        if hasattr(m, "dropout") and isinstance(m.dropout, nn.Dropout):
            m.dropout = None
    ours.q_ensemble.dropout = None
    ours.target_q.dropout = None


# ---------------------------------------------------------------------------- the comparisons
def compare_forward(tag: str, off: Any, wm: Any, ours: Any, cfg: Any, b: int) -> None:
    wm.eval()
    ours.eval()
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(b, cfg.obs_shape["state"][0], generator=g)
    act = torch.rand(b, cfg.action_dim, generator=g) * 2 - 1
    task = torch.randint(len(cfg.tasks), (b,), generator=g) if cfg.multitask else None
    with torch.no_grad():
        z_o, z_w = wm.encode(obs, task), ours.encode(obs, task)
        record(tag, "encoder z", z_o, z_w)
        record(tag, "dynamics next z", wm.next(z_o, act, task), ours.next(z_o, act, task))
        r_o, r_w = wm.reward(z_o, act, task), ours.reward_logits(z_o, act, task)
        record(tag, "reward logits", r_o, r_w)
        record(
            tag,
            "reward (two-hot inverse)",
            off.math.two_hot_inv(r_o, cfg),
            ours.plan_reward(z_o, act, task),
        )
        target = torch.randn(b, 1, generator=g) * 5
        record(
            tag,
            "soft_ce(reward logits, target)",
            off.math.soft_ce(r_o, target, cfg),
            soft_ce(r_o, target[:, 0], ours.bins),
        )
        record(
            tag,
            f"Q logits, all {cfg.num_q} heads",
            wm.Q(z_o, act, task, return_type="all"),
            ours.q_logits(z_o, act, task),
        )
        record(
            tag,
            "target Q logits",
            wm.Q(z_o, act, task, return_type="all", target=True),
            ours.q_logits(z_o, act, task, target=True),
        )
        for reduce in ("min", "avg"):
            torch.manual_seed(7)
            q_o = wm.Q(z_o, act, task, return_type=reduce)
            torch.manual_seed(7)
            q_w = ours.q_value(z_o, act, task, reduce=reduce)
            record(tag, f"Q value ({reduce} of 2 random heads)", q_o, q_w)
        if cfg.episodic:
            record(
                tag,
                "termination logit",
                wm.termination(z_o, task, unnormalized=True),
                ours.termination_logit(z_o, task),
            )
        torch.manual_seed(3)
        a_o, info = wm.pi(z_o, task)
        torch.manual_seed(3)
        s = ours.pi(z_o, task)
        record(tag, "policy mean (tanh)", info["mean"], s["mean"])
        record(tag, "policy log-std", info["log_std"], s["log_std"])
        record(tag, "policy action (same noise)", a_o, s["action"])
        record(tag, "policy entropy", info["entropy"], s["entropy"])
        record(tag, "policy scaled entropy", info["scaled_entropy"], s["scaled_entropy"])


def compare_update(tag: str, agent: Any, ours: Any, cfg: Any, b: int) -> None:
    """One full update (world model + policy + target EMA) on the same batch and draws."""
    h, a_dim, obs_dim = cfg.horizon, cfg.action_dim, cfg.obs_shape["state"][0]
    g = torch.Generator().manual_seed(2)
    obs = torch.randn(b, h + 1, obs_dim, generator=g)
    action = torch.rand(b, h + 1, a_dim, generator=g) * 2 - 1
    action[:, 0] = 0  # ours: action[t] led to obs[t]; step 0's is unused
    reward = torch.randn(b, h + 1, generator=g) * 3
    terminal = torch.zeros(b, h + 1)
    if cfg.episodic:  # an episode may only end on the last step of a sampled window
        terminal[:, -1] = (torch.rand(b, generator=g) < 0.3).float()
    task = torch.randint(len(cfg.tasks), (b,), generator=g) if cfg.multitask else None
    if task is not None:
        action = action * ours.action_masks[task][:, None]
    batch = {
        "obs": obs,
        "action": action,
        "reward": reward,
        "terminal": terminal.bool(),
        "first": torch.zeros(b, h + 1, dtype=torch.bool),
    }
    if task is not None:
        batch["task"] = task
    # The official buffer's layout: time first, obs (H+1, B, D), action/reward/terminated (H, B, .).
    o_obs = obs.transpose(0, 1).contiguous()
    o_act = action[:, 1:].transpose(0, 1).contiguous()
    o_rew = reward[:, 1:].transpose(0, 1).unsqueeze(-1).contiguous()
    o_term = terminal[:, 1:].transpose(0, 1).unsqueeze(-1).contiguous()

    before = {k: v.clone() for k, v in official_to_ours(agent.model.state_dict()).items()}
    agent.model.eval()
    g_off: dict[str, dict[str, Tensor]] = {}
    capture_grads(agent.optim, agent.model, g_off, "model")
    capture_grads(agent.pi_optim, agent.model, g_off, "policy")
    torch.manual_seed(11)
    kwargs = {"task": task} if task is not None else {}
    info = agent._update(o_obs, o_act, o_rew, o_term, **kwargs)

    ours.train()
    model_opt, pi_opt = ours.build_optimizers()
    g_own: dict[str, dict[str, Tensor]] = {}
    capture_grads(model_opt, ours, g_own, "model", official=False)
    capture_grads(pi_opt, ours, g_own, "policy", official=False)
    torch.manual_seed(11)
    m = ours.update(batch, model_opt, pi_opt)
    ours.eval()
    for which in ("model", "policy"):
        a_, b_ = g_off[which], g_own[which]
        if which == "policy":  # the official policy loss also leaves a gradient on the task
            # embedding (not detached there; ours detaches it): compare the policy's own
            a_ = {k: v for k, v in a_.items() if k.startswith("policy.")}
        if set(a_) != set(b_):
            raise KeyError(f"{which} gradients on different parameters: {set(a_) ^ set(b_)}")
        worst = max((a_[k] - b_[k]).abs().max().item() for k in a_)
        size = max(a_[k].abs().max().item() for k in a_)
        record(
            tag,
            f"update: {which} gradients, every parameter",
            torch.tensor(worst),
            torch.tensor(0.0),
        )
        ROWS[-1] = (*ROWS[-1][:3], size)
    c = ours.config
    pairs = [
        ("consistency loss", info["consistency_loss"], m["loss/consistency"] / c.consistency_coef),
        ("reward loss", info["reward_loss"], m["loss/reward"] / c.reward_coef),
        ("value loss", info["value_loss"], m["loss/value"] / c.value_coef),
        ("termination loss", info["termination_loss"], m["loss/termination"] / c.termination_coef),
        ("total world-model loss", info["total_loss"], m["loss/total"]),
        ("world-model grad norm", info["grad_norm"], m["grad/model_norm"]),
        ("policy loss", info["pi_loss"], m["loss/policy"]),
        ("policy grad norm", info["pi_grad_norm"], m["grad/policy_norm"]),
        ("running scale", info["pi_scale"], m["policy/scale"]),
    ]
    for name, a, b_ in pairs:
        if name == "termination loss" and not cfg.episodic:
            continue
        record(tag, f"update: {name}", a, b_)
    mapped = official_to_ours(agent.model.state_dict())
    own = ours.state_dict()
    for name, keys in (
        (
            "update: parameters after the Adam steps",
            [k for k in mapped if not k.startswith("target_q")],
        ),
        ("update: target Q after the EMA", [k for k in mapped if k.startswith("target_q")]),
    ):
        worst = max((mapped[k] - own[k]).abs().max().item() for k in keys)
        step = max((mapped[k] - before[k]).abs().max().item() for k in keys)
        ROWS.append((tag, name + " (last column: largest change)", worst, step))


def capture_grads(
    opt: torch.optim.Optimizer, model: nn.Module, store: dict, which: str, official: bool = True
) -> None:
    """Record the gradients (by our parameter names) when ``opt`` steps."""
    step = opt.step

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        sd = model.state_dict(keep_vars=True)
        grads = {k: v.grad for k, v in sd.items() if isinstance(v, Tensor) and v.grad is not None}
        if official:
            grads = official_to_ours(grads)
        store[which] = {k: v.detach().clone() for k, v in grads.items()}
        return step(*args, **kwargs)

    opt.step = wrapped  # type: ignore[method-assign]


def compare_planner(tag: str, agent: Any, ours: Any, cfg: Any) -> None:
    """MPPI from one observation, cold start then warm start, same draws until the final pick."""
    agent.model.eval()
    ours.eval()
    g = torch.Generator().manual_seed(4)
    obs = torch.randn(1, cfg.obs_shape["state"][0], generator=g)
    task = torch.tensor([3]) if cfg.multitask else None
    with torch.no_grad():  # the value of 512 given action sequences (same draws inside)
        z = ours.encode(obs, task).repeat(cfg.num_samples, 1)
        seqs = (torch.randn(cfg.horizon, cfg.num_samples, cfg.action_dim, generator=g)).clamp(-1, 1)
        torch.manual_seed(9)
        v_o = agent._estimate_value(z, seqs, task)
        torch.manual_seed(9)
        tk = None if task is None else task.expand(cfg.num_samples)
        disc = ours.discount_for(tk, cfg.num_samples)
        v_w = ours.planner.estimate_value(ours, z, seqs, disc, tk)
        record(tag, "MPPI value estimate of 512 sequences", v_o, v_w)
    prev = None
    for step, t0 in enumerate((True, False)):
        torch.manual_seed(20 + step)
        agent._plan(obs, t0=t0, eval_mode=True, task=task)
        torch.manual_seed(20 + step)
        with torch.no_grad():
            z = ours.encode(obs, task)
            res = ours.planner.plan(
                ours,
                z,
                prev_mean=prev,
                discount=ours.discount_for(task, 1),
                task=task,
                action_mask=ours._mask(task),
                eval_mode=True,
            )
        prev = res.mean
        record(
            tag, f"MPPI final mean, {'cold' if t0 else 'warm'} start", agent._prev_mean, res.mean[0]
        )


def settings(names: list[str]) -> dict[str, dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    mt = {
        "task": "mt80",
        "obs": 39,
        "action_dim": 6,
        # made-up per-task action sizes (1..6) and episode lengths (the real ones need the envs)
        "action_dims": torch.randint(1, 7, (80,), generator=g).tolist(),
        "episode_lengths": [1000] * 30 + [100] * 50,
    }
    all_ = {
        "5m": {"task": "walker-walk", "obs": 24, "action_dim": 6},
        "5m-episodic": {"task": "walker-walk", "obs": 24, "action_dim": 6, "episodic": True},
        "mt80": mt,
    }
    return {k: all_[k] for k in names}


def ours_for(setting: dict[str, Any], weights: str) -> Any:
    """``tdmpc2:5m`` loading the official file: the spaces (observation and action sizes, tasks,
    per-task action sizes, termination head) are read from the file, not passed here."""
    kw: dict[str, Any] = {}
    if setting["task"] == "mt80":
        kw["task_episode_lengths"] = setting["episode_lengths"]  # not stored in the file
    return create_world_model("tdmpc2:5m", weights=weights, **kw)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official", required=True, help="checkout of nicklashansen/tdmpc2 @ e9f5932")
    p.add_argument(
        "--settings",
        nargs="+",
        default=["5m", "5m-episodic", "mt80"],
        choices=["5m", "5m-episodic", "mt80"],
    )
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    off = import_official(args.official)
    for tag, setting in settings(args.settings).items():
        cfg = official_cfg(off, setting, args.batch)
        torch.manual_seed(0)
        wm = off.WorldModel(cfg)
        perturb(wm, torch.Generator().manual_seed(5))
        with tempfile.TemporaryDirectory() as folder:
            ours = ours_for(setting, official_file(wm, folder))
        assert torch.equal(ours.action_masks, wm._action_masks) if cfg.multitask else True
        agent = official_agent(off, cfg, wm)
        disc_o = agent.discount if cfg.multitask else torch.tensor([agent.discount])
        record(tag, "discount(s)", disc_o, ours.discounts)
        compare_forward(tag, off, wm, ours, cfg, args.batch)
        compare_planner(tag, agent, ours, cfg)
        no_dropout(wm, ours)
        compare_update(tag, agent, ours, cfg, args.batch)
    print("| setting | quantity | max abs diff | max abs (official) |")
    print("|---|---|---|---|")
    for tag, name, diff, size in ROWS:
        print(f"| {tag} | {name} | {diff:.2e} | {size:.3g} |")


if __name__ == "__main__":
    main()
