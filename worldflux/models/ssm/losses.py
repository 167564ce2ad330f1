"""R2I's losses: world model, actor (imagination) and critic, one optimiser each.

Facts from chandar-lab/Recall2Imagine @ 6e317e7, ``recall2imagine/agent.py`` (``WorldModel.loss``,
``WorldModel.imagine``, ``ImagActorCritic.loss``, ``VFunction``) and ``jaxutils.py``
(``Moments`` ``perc_ema``, ``SlowUpdater``):

* World model: per step, ``rec`` (images: squared error summed over pixels; vectors: symlog
  squared error summed), ``reward`` (two-hot of symlog reward over 255 bins in [-20, 20]),
  ``cont`` (Bernoulli of ``1 - terminal``), ``dyn = max(free, KL(sg(post) || prior))`` and
  ``rep = max(free, KL(post || sg(prior)))``; the loss is the mean of the scaled sum.
* Imagination from every posterior state for ``imag_horizon`` steps under the actor; the
  continuation of imagined states is the continue head's mode, the first one ``1 - terminal``;
  weights ``cumprod(discount * cont) / discount``.
* Returns: ``R_t = r_{t+1} + g_{t+1} ((1 - lam) v_{t+1} + lam R_{t+1})``, ``g = cont * discount``,
  bootstrapped from the critic itself; normalised by an EMA (decay 0.99) of the 5th and 95th
  percentiles, scale ``max(1, hi - lo)``.
* Actor: REINFORCE (discrete) or backpropagation through the dynamics (continuous) of the
  normalised advantage, minus ``actent`` x entropy, weighted. Critic: two-hot NLL of the returns
  plus ``slowreg`` x NLL of the slow critic's mean, weighted; the slow critic is an EMA (0.02).

Axis legend: ``B`` batch, ``T`` time, ``N = B * T`` starts, ``H`` imagined steps + 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from worldflux.models.ssm.dynamics import State, features

if TYPE_CHECKING:
    from worldflux.models.ssm.module import SSM


class PercentileNorm(nn.Module):
    """EMA of the ``perclo``/``perchi`` return percentiles; ``(offset, scale)`` for advantages."""

    low: Tensor
    high: Tensor

    def __init__(self, decay: float, maximum: float, perclo: float, perchi: float) -> None:
        super().__init__()
        self.decay, self.maximum = decay, maximum
        self.q = (perclo / 100.0, perchi / 100.0)
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))

    def forward(self, x: Tensor, update: bool) -> tuple[Tensor, Tensor]:
        if update:
            flat = x.detach().float().flatten()
            q = torch.quantile(flat, torch.tensor(self.q, device=flat.device))
            self.low.mul_(self.decay).add_((1 - self.decay) * q[0])
            self.high.mul_(self.decay).add_((1 - self.decay) * q[1])
        scale = torch.clamp(self.high - self.low, min=1.0 / self.maximum)
        return self.low.clone(), scale


def world_model_loss(
    model: SSM,
    obs: dict[str, Tensor],
    action: Tensor,
    reward: Tensor,
    first: Tensor,
    terminal: Tensor,
    state: State,
) -> tuple[Tensor, dict[str, Tensor], dict[str, Any]]:
    """Scaled world-model loss, its weighted terms and the outputs later phases need."""
    scales = model.config.loss_scales
    b, t = first.shape
    embed = model.encoder({k: v.flatten(0, 1) for k, v in obs.items()}).view(b, t, -1)
    post, last = model.dynamics.observe(embed, action, first, state)
    losses, metrics = model.dynamics.kl_losses(post["logit"], post["prior_logit"])
    feat = features(post, ("deter", "stoch"))
    recs = model.decoder.losses(feat.flatten(0, 1), {k: v.flatten(0, 1) for k, v in obs.items()})
    for name, value in recs.items():
        losses[f"rec_{name}"] = value.view(b, t)
    losses["reward"] = model.reward_head.nll(model.reward_head(feat), reward)
    losses["cont"] = model.continue_head.nll(model.continue_head(feat), 1.0 - terminal.float())
    weighted = {}
    for name, value in losses.items():
        weighted[name] = scales["rec" if name.startswith("rec_") else name] * value.mean()
    total = torch.stack(list(weighted.values())).sum()
    outputs = {
        "post": {k: post[k].detach() for k in ("deter", "stoch", "hidden")},
        "terminal": terminal,
        "last": {k: v.detach() for k, v in last.items()},
    }
    return (
        total,
        weighted,
        {"outputs": outputs, "metrics": {f"wm/{k}": v for k, v in metrics.items()}},
    )


def imagine(model: SSM, start: State, terminal: Tensor, backprop: bool) -> dict[str, Tensor]:
    """Imagined trajectories ``(N, H, ...)`` from detached starts ``(N, ...)`` under the actor."""
    cfg = model.config
    parts = cfg.ac_inputs

    def act(state: State) -> Tensor:
        dist = model.policy(features({k: v.detach() for k, v in state.items()}, parts))
        if backprop:  # reparameterised sample: the actor learns through the dynamics
            return dist.mean + dist.std * torch.randn_like(dist.mean)
        return dist.sample()

    states, actions = [start], [act(start)]
    for _ in range(cfg.imag_horizon):
        nxt = model.dynamics.img_step(states[-1], actions[-1])
        nxt = {k: nxt[k] for k in ("deter", "stoch", "hidden")}
        states.append(nxt)
        actions.append(act(nxt))
    traj = {k: torch.stack([s[k] for s in states], 1) for k in ("deter", "stoch", "hidden")}
    traj["action"] = torch.stack(actions, 1)
    wm_feat = features(traj, ("deter", "stoch"))
    cont = (model.continue_head(wm_feat) > 0).float()
    first_cont = 1.0 - terminal.float()
    traj["cont"] = torch.cat([first_cont[:, None], cont[:, 1:]], 1)
    disc = cfg.discount
    traj["weight"] = torch.cumprod(disc * traj["cont"], 1) / disc
    traj["reward"] = model.reward_head.mean(model.reward_head(wm_feat))[:, 1:]
    return traj


def lambda_returns(rew: Tensor, cont: Tensor, value: Tensor, discount: float, lam: float) -> Tensor:
    """``(N, H - 1)`` lambda-returns of rewards ``(N, H - 1)``, conts and values ``(N, H)``."""
    disc = cont[:, 1:] * discount
    interm = rew + disc * value[:, 1:] * (1 - lam)
    rets = [value[:, -1]]
    for t in reversed(range(disc.shape[1])):
        rets.append(interm[:, t] + disc[:, t] * lam * rets[-1])
    return torch.stack(rets[::-1][:-1], 1)


def actor_loss(model: SSM, wm_out: Mapping[str, Any], update: bool) -> tuple[Tensor, dict, dict]:
    """The actor's loss on fresh imagination from the world-model phase's posteriors."""
    cfg = model.config
    post = {k: v.flatten(0, 1) for k, v in wm_out["post"].items()}
    terminal = wm_out["terminal"].flatten(0, 1)
    backprop = cfg.action_kind == "continuous"
    with torch.set_grad_enabled(backprop and torch.is_grad_enabled()):
        traj = imagine(model, post, terminal, backprop)
    feat = features(traj, cfg.ac_inputs)
    value = model.value.mean(model.value(feat))
    ret = lambda_returns(traj["reward"], traj["cont"], value, cfg.discount, cfg.return_lambda)
    offset, scale = model.retnorm(ret, update)
    adv = (ret - value[:, :-1]) / scale
    policy = model.policy(feat.detach())
    ent = policy.entropy()[:, :-1]
    # REINFORCE for discrete actions, backpropagation through the dynamics for continuous ones
    logpi = policy.log_prob(traj["action"].detach())[:, :-1]
    loss = -adv if backprop else -logpi * adv.detach()
    loss = (loss - cfg.actent * ent) * traj["weight"][:, :-1].detach()
    total = cfg.loss_scales["actor"] * loss.mean()
    detached = {k: v.detach() for k, v in traj.items()}
    metrics = {
        "ac/adv": adv.mean().detach(),
        "ac/entropy": ent.mean().detach(),
        "ac/ret": ((ret - offset) / scale).mean().detach(),
        "ac/reward": traj["reward"].mean().detach(),
        "ac/weight": traj["weight"].mean().detach(),
    }
    return total, {"actor": total}, {"traj": detached, "ret": ret.detach(), "metrics": metrics}


def critic_loss(model: SSM, actor_out: Mapping[str, Any]) -> tuple[Tensor, dict]:
    """The critic's two-hot loss toward the returns and the slow critic."""
    cfg = model.config
    traj, ret = actor_out["traj"], actor_out["ret"]
    feat = features({k: v[:, :-1] for k, v in traj.items()}, cfg.ac_inputs)
    logits = model.value(feat)
    with torch.no_grad():
        slow = model.slow_value.mean(model.slow_value(feat))
    loss = model.value.nll(logits, ret) + cfg.loss_scales["slowreg"] * model.value.nll(logits, slow)
    total = cfg.loss_scales["critic"] * (loss * traj["weight"][:, :-1]).mean()
    return total, {"critic": total}
