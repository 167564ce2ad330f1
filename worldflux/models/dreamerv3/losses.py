"""DreamerV3's loss on a batch of replayed sequences: world model, imagination and replay terms.

Facts from danijar/dreamerv3 ``dreamerv3/agent.py`` (``Agent.loss``) @ e3f0224. World model:
reconstruction (images: squared error of sigmoid outputs against pixels in ``[0, 1]`` summed over
pixels; vectors: squared error against their symlog, summed), reward (symexp two-hot), continue
(binary, target ``(1 - terminal) * (1 - 1/horizon)`` with ``contdisc``), and the dynamics and
representation KLs with free nats. Actor-critic: imagination of ``imag_length`` steps from every
replayed posterior state under the actor, losses from :mod:`.behavior`. The total is the sum of
each term's mean times its scale.

Axis legend: ``B`` batch, ``T`` time, ``K`` imagination starts per sequence, ``N = B * K``,
``H`` imagined steps, ``F`` feature size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from worldflux.models.dreamerv3.behavior import imagination_losses, replay_value_loss
from worldflux.models.dreamerv3.rssm import State

if TYPE_CHECKING:
    from worldflux.models.dreamerv3.module import DreamerV3


def features(state: State) -> Tensor:
    """Model features ``[deter, flat stoch]`` ``(..., F)`` of a state."""
    stoch = state["stoch"]
    return torch.cat([state["deter"], stoch.reshape(*stoch.shape[:-2], -1)], -1)


def world_model_losses(
    model: DreamerV3,
    obs: dict[str, Tensor],
    action: Tensor,
    reward: Tensor,
    first: Tensor,
    terminal: Tensor,
    state: State,
) -> tuple[dict[str, Tensor], State, Tensor, dict[str, Tensor]]:
    """Per-step world-model losses ``(B, T)``, posterior states, features ``(B, T, F)``, metrics."""
    cfg = model.config
    b, t = first.shape
    embed = model.encoder({k: v.flatten(0, 1) for k, v in obs.items()}).view(b, t, -1)
    post, last = model.dynamics.observe(embed, action, first, state)
    losses, metrics = model.dynamics.kl_losses(post["logit"], post["deter"])
    feat = features(post)
    recons = model.decoder.losses(
        post["deter"].flatten(0, 1),
        post["stoch"].flatten(0, 1).flatten(1),
        {k: v.flatten(0, 1) for k, v in obs.items()},
    )
    for name, value in recons.items():
        losses[f"rec_{name}"] = value.view(b, t)
    rew_in = feat if cfg.reward_grad else feat.detach()
    losses["rew"] = model.reward_head.loss(model.reward_head(rew_in), reward)
    con = 1.0 - terminal.float()
    if cfg.contdisc:
        con = con * cfg.discount
    losses["con"] = model.continue_head.loss(model.continue_head(feat), con)
    post["last"] = last  # type: ignore[assignment]
    return losses, post, feat, {f"wm/{k}": v for k, v in metrics.items()}


def actor_critic_losses(
    model: DreamerV3,
    post: State,
    feat: Tensor,
    reward: Tensor,
    last: Tensor,
    terminal: Tensor,
    update: bool,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Imagination losses ``policy``, ``value`` and the replay loss ``repval``."""
    cfg = model.config
    b, t = reward.shape
    k = min(cfg.imag_last or t, t)
    start = {n: post[n][:, -k:].flatten(0, 1).detach() for n in ("deter", "stoch")}
    first_feat = feat[:, -k:].flatten(0, 1)
    if not cfg.ac_grads:
        first_feat = first_feat.detach()
    img_feat, acts = model.dynamics.imagine_features(
        start, first_feat.detach(), lambda f: model.policy(f).sample(), cfg.imag_length
    )
    if first_feat.requires_grad:
        img_feat = torch.cat([first_feat[:, None], img_feat[:, 1:]], 1)
    with torch.no_grad():
        rew = model.reward_head.pred(model.reward_head(img_feat))
        con = model.continue_head.prob(model.continue_head(img_feat))
        slow = model.slow_value.pred(model.slow_value(img_feat))
    disc = 1.0 if cfg.contdisc else cfg.discount
    losses, ret, mets = imagination_losses(
        acts,
        rew,
        con,
        model.policy(img_feat),
        model.value(img_feat),
        slow,
        model.value,
        model.retnorm,
        update,
        disc=disc,
        lam=cfg.lam,
        actent=cfg.actent,
        slowreg=cfg.slowreg,
    )
    metrics = {f"ac/{n}": v for n, v in mets.items()}
    if cfg.repval_loss:
        rfeat = feat[:, -k:] if cfg.repval_grad else feat[:, -k:].detach()
        with torch.no_grad():
            rslow = model.slow_value.pred(model.slow_value(rfeat))
        losses["repval"] = replay_value_loss(
            last[:, -k:],
            terminal[:, -k:],
            reward[:, -k:],
            ret[:, 0].view(b, k),
            model.value(rfeat),
            rslow,
            model.value,
            disc=cfg.discount,
            lam=cfg.lam,
            slowreg=cfg.slowreg,
        )
    return losses, metrics


def total_loss(model: DreamerV3, losses: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """``sum(scale * mean)`` over the terms and the weighted terms themselves."""
    scales = model.config.loss_scales
    weighted = {}
    for name, value in losses.items():
        scale = scales["rec"] if name.startswith("rec_") else scales[name]
        weighted[name] = scale * value.mean()
    return torch.stack(list(weighted.values())).sum(), weighted
