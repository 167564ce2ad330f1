"""DreamerV3's actor-critic: lambda-returns, return normalisation, imagination and replay losses.

Facts from danijar/dreamerv3 ``dreamerv3/agent.py`` (``imag_loss``, ``repl_loss``,
``lambda_return``) and ``embodied/jax/utils.py`` (``Normalize``, ``SlowModel``) @ e3f0224:

* Imagined trajectories are detached; the actor learns by REINFORCE with advantages
  ``(R - v) / max(1, P95 - P5)`` of the lambda-returns ``R`` (percentiles tracked by an EMA of
  rate 0.01), weighted by the cumulative predicted continuation, plus ``actent`` x entropy.
* The critic regresses the lambda-returns (two-hot) and, with weight ``slowreg``, the slow
  critic's prediction; its targets bootstrap from the critic itself (``slowtar: False``).
* A replay value loss regresses lambda-returns of the replayed rewards, bootstrapped from the
  imagined returns at each replay step.
* The slow critic is an EMA copy of the critic (rate 0.02, every update).

Axis legend: ``N`` imagination starts (``B * K``), ``H`` imagined steps + 1, ``B`` batch,
``T`` time, ``K`` bins.
"""

from __future__ import annotations

import torch
from torch import Tensor

from worldflux.models.dreamerv3.heads import TwoHotHead
from worldflux.nn.distributions import BoundedNormal, Categorical
from worldflux.nn.scale import PercentileScale


def lambda_return(
    last: Tensor, term: Tensor, rew: Tensor, boot: Tensor, disc: float, lam: float
) -> Tensor:
    """Lambda-returns ``(N, L - 1)`` of sequences ``(N, L)`` (the official recursion).

    ``R_t = r_{t+1} + gamma_{t+1} ((1 - c_{t+1}) b_{t+1} + c_{t+1} R_{t+1})`` with
    ``gamma = (1 - term) * disc``, ``c = (1 - last) * lam`` and ``R_{L-1} = b_{L-1}``.
    """
    live = (1.0 - term[:, 1:].float()) * disc
    cont = (1.0 - last[:, 1:].float()) * lam
    interm = rew[:, 1:] + (1.0 - cont) * live * boot[:, 1:]
    rets = [boot[:, -1]]
    for t in reversed(range(live.shape[1])):
        rets.append(interm[:, t] + live[:, t] * cont[:, t] * rets[-1])
    return torch.stack(rets[::-1][:-1], 1)


def imagination_losses(
    act: Tensor,
    rew: Tensor,
    con: Tensor,
    policy: Categorical | BoundedNormal,
    value_logits: Tensor,
    slow_value: Tensor,
    value_head: TwoHotHead,
    retnorm: PercentileScale,
    update: bool,
    *,
    disc: float,
    lam: float,
    actent: float,
    slowreg: float,
) -> tuple[dict[str, Tensor], Tensor, dict[str, Tensor]]:
    """Actor and critic losses on imagined trajectories.

    Args:
        act: actions taken at each state ``(N, H, A)``.
        rew, con: predicted reward and continuation probability ``(N, H)`` (detached).
        policy: the actor's distribution at each state (batch ``(N, H)``).
        value_logits: critic logits ``(N, H, K)``.
        slow_value: slow critic predictions ``(N, H)``.
        value_head: the critic (for its prediction and loss).
        retnorm: the return normaliser; updated when ``update``.
        disc: discount applied in the returns (1 when folded into ``con``).
        lam, actent, slowreg: lambda, entropy scale, slow-critic regulariser weight.

    Returns:
        ``(losses, returns, metrics)`` with losses ``policy`` and ``value`` of shape
        ``(N, H - 1)`` and the lambda-returns ``(N, H - 1)``.
    """
    val = value_head.pred(value_logits.detach())
    weight = (torch.cumprod(disc * con, 1) / disc).detach()
    ret = lambda_return(torch.zeros_like(con), 1.0 - con, rew, val, disc, lam)
    roffset, rscale = retnorm(ret, update)
    adv = ((ret - val[:, :-1]) / rscale).detach()
    logpi = policy.log_prob(act)[:, :-1]
    ent = policy.entropy()[:, :-1]
    policy_loss = weight[:, :-1] * -(logpi * adv + actent * ent)
    logp = torch.log_softmax(value_logits[:, :-1], -1)
    value_loss = weight[:, :-1] * (
        value_head.nll(logp, ret.detach()) + slowreg * value_head.nll(logp, slow_value[:, :-1])
    )
    ret_normed = (ret - roffset) / rscale
    metrics = {
        "adv": adv.mean(),
        "adv_std": adv.std(),
        "adv_mag": adv.abs().mean(),
        "rew": rew.mean(),
        "con": con.mean(),
        "ret": ret_normed.mean(),
        "val": val.mean(),
        "weight": weight.mean(),
        "slowval": slow_value.mean(),
        "ret_rate": (ret_normed.abs() >= 1.0).float().mean(),
        "ret_scale": rscale,
        "ret_offset": roffset,
        "entropy": ent.mean(),
        "rand": (ent.mean() - policy.minent) / (policy.maxent - policy.minent),
    }
    return (
        {"policy": policy_loss, "value": value_loss},
        ret.detach(),
        {k: v.detach() for k, v in metrics.items()},
    )


def replay_value_loss(
    last: Tensor,
    term: Tensor,
    rew: Tensor,
    boot: Tensor,
    value_logits: Tensor,
    slow_value: Tensor,
    value_head: TwoHotHead,
    *,
    disc: float,
    lam: float,
    slowreg: float,
) -> Tensor:
    """Critic loss ``(B, T - 1)`` on replayed sequences, bootstrapped from imagined returns.

    Args:
        last, term, rew: episode-end flags, terminal flags and rewards ``(B, T)``.
        boot: imagined lambda-return from each replay state ``(B, T)``.
        value_logits: critic logits on the replay states ``(B, T, K)``.
        slow_value: slow critic predictions ``(B, T)``.
    """
    weight = 1.0 - last.float()
    ret = lambda_return(last, term, rew, boot.detach(), disc, lam).detach()
    logp = torch.log_softmax(value_logits[:, :-1], -1)
    return weight[:, :-1] * (
        value_head.nll(logp, ret) + slowreg * value_head.nll(logp, slow_value[:, :-1])
    )
