"""R2I's state-space world-model core (``S3M`` with ``nonrecurrent_enc: True``).

Facts from chandar-lab/Recall2Imagine @ 6e317e7, ``recall2imagine/ssm_nets.py`` and
``nets.py`` (``RSSM.observe_nonrecurrent_enc``, ``img_step``): the posterior reads the embedding
alone (``obs_out`` dense, ``obs_stats`` logits), so every step's posterior is computed at once.
The SSM input at step ``t`` is ``img_in([stoch_{t-1}, action_{t-1}])`` from the previous
posterior sample (teacher forcing) and the action (zeroed at episode starts); the S5 stack runs
over the whole sequence as a parallel scan, restarting from the learned initial hidden state at
episode starts; ``deter_t = out_proj(y_t)`` (SiLU, no norm) and the prior reads ``deter`` through
``img_out`` / ``img_stats``. The initial state is learned: ``deter0 = tanh(w)``, ``stoch0`` the
prior mode at ``deter0`` and a complex ``hidden0`` per layer. Imagination steps the S5 stack one
step at a time.

The agent state is ``{"deter": (B, D), "stoch": (B, S, K), "hidden": (B, L, P, 2)}`` (the S5
states as real/imaginary pairs, the layout the actor and critic read).

Axis legend: ``B`` batch, ``T`` time, ``D`` deter, ``S`` latents, ``K`` classes, ``E`` embedding,
``A`` actions, ``H`` units, ``L`` SSM layers, ``P`` SSM state.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from worldflux.models.dreamerv3.rssm import categorical_entropy, categorical_kl
from worldflux.models.ssm.networks import Dense
from worldflux.models.ssm.s5 import S5Stack
from worldflux.nn.distributions import sample_onehot, unimix_logprobs

State = dict[str, Tensor]


class S3M(nn.Module):
    """The SSM world-model core.

    Args:
        deter, units, ssm_state, ssm_layers, stoch, classes: sizes (family config).
        embed_dim: size of the encoder's output.
        action_dim: size of the action vector.
        blocks: diagonal HiPPO blocks of each S5 layer.
        dt_min, dt_max, discretization: S5 timescale range and discretisation.
        unimix: uniform mixture of the latent categoricals.
        free_nats: lower clip of each KL term.
        action_clip: actions are scaled down to this magnitude.
    """

    def __init__(
        self,
        deter: int,
        units: int,
        ssm_state: int,
        ssm_layers: int,
        stoch: int,
        classes: int,
        embed_dim: int,
        action_dim: int,
        blocks: int = 8,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        discretization: str = "bilinear",
        unimix: float = 0.01,
        free_nats: float = 1.0,
        action_clip: float = 1.0,
    ) -> None:
        super().__init__()
        self.deter, self.stoch, self.classes = deter, stoch, classes
        self.layers, self.state_size = ssm_layers, ssm_state
        self.unimix, self.free_nats, self.action_clip = unimix, free_nats, action_clip
        flat = stoch * classes
        self.obs_out = Dense(embed_dim, units)
        self.obs_stats = Dense(units, flat, False, False, "uniform")
        self.img_in = Dense(flat + action_dim, units)
        self.core = S5Stack(
            units,
            ssm_state,
            ssm_layers,
            blocks=blocks,
            dt_min=dt_min,
            dt_max=dt_max,
            discretization=discretization,
        )
        self.out_proj = Dense(units, deter, norm=False)
        self.img_out = Dense(deter, units)
        self.img_stats = Dense(units, flat, False, False, "uniform")
        self.initial_hidden = nn.Parameter(torch.zeros(2, ssm_layers, ssm_state))
        self.initial_deter = nn.Parameter(torch.zeros(deter))

    # ------------------------------------------------------------------ state
    def initial(self, batch_size: int) -> State:
        """The learned initial state, repeated ``batch_size`` times."""
        deter = torch.tanh(self.initial_deter)[None].expand(batch_size, -1)
        logit = self.prior_logit(deter)
        hidden = self.initial_hidden.permute(1, 2, 0)[None].expand(batch_size, -1, -1, -1)
        return {
            "deter": deter,
            "stoch": sample_onehot(self.logprobs(logit), mode=True).detach(),  # prior mode
            "hidden": hidden,
        }

    def logprobs(self, logit: Tensor) -> Tensor:
        """Unimix log-probabilities of raw logits ``(..., S, K)``."""
        return unimix_logprobs(logit, self.unimix)

    def prior_logit(self, deter: Tensor) -> Tensor:
        """Prior logits ``(..., S, K)`` from ``deter (..., D)``."""
        return self.img_stats(self.img_out(deter)).view(*deter.shape[:-1], self.stoch, self.classes)

    def post_logit(self, embed: Tensor) -> Tensor:
        """Posterior logits ``(..., S, K)`` from the embedding alone."""
        x = self.obs_stats(self.obs_out(embed))
        return x.view(*embed.shape[:-1], self.stoch, self.classes)

    def _clip(self, action: Tensor) -> Tensor:
        if self.action_clip <= 0:
            return action
        return action * (self.action_clip / action.abs().clamp(min=self.action_clip)).detach()

    # ------------------------------------------------------------------ filtering
    def observe(
        self, embed: Tensor, action: Tensor, reset: Tensor, state: State, sample: bool = True
    ) -> tuple[State, State]:
        """Posterior over a sequence with one parallel scan.

        Args:
            embed: encoder outputs ``(B, T, E)``.
            action: previous actions ``(B, T, A)``.
            reset: episode starts ``(B, T)`` bool.
            state: the carry before the first step.
            sample: sample the latents (else take the mode).

        Returns:
            ``(states, last)``: ``deter (B, T, D)``, ``stoch (B, T, S, K)``, ``hidden
            (B, T, L, P, 2)``, posterior ``logit`` and ``prior_logit`` ``(B, T, S, K)``; ``last``
            is the carry after the final step.
        """
        b, t = embed.shape[:2]
        first = reset.to(embed.dtype)
        zero = self.initial(b)
        keep0 = (1.0 - first[:, 0]).view(b, 1)
        state = {
            k: v * keep0.view(b, *[1] * (v.dim() - 1))
            + zero[k] * (1 - keep0).view(b, *[1] * (v.dim() - 1))
            for k, v in state.items()
            if k in zero
        }
        post_logit = self.post_logit(embed)
        stoch = sample_onehot(self.logprobs(post_logit), mode=not sample)
        prev = torch.cat([state["stoch"][:, None], stoch[:, :-1]], 1).flatten(2)
        act = self._clip(action) * (1.0 - first)[..., None]
        x = self.img_in(torch.cat([prev, act], -1))
        hidden0 = torch.view_as_complex(state["hidden"].contiguous())
        init = torch.view_as_complex(zero["hidden"].contiguous())
        # the carry already holds the reset of step 0; the scan handles the later ones
        later = torch.cat([torch.zeros_like(first[:, :1]), first[:, 1:]], 1)
        y, hidden = self.core(x, hidden0, later, init)
        deter = self.out_proj(y)
        hidden = torch.view_as_real(hidden)
        states = {
            "deter": deter,
            "stoch": stoch,
            "hidden": hidden,
            "logit": post_logit,
            "prior_logit": self.prior_logit(deter),
        }
        last = {"deter": deter[:, -1], "stoch": stoch[:, -1], "hidden": hidden[:, -1]}
        return states, last

    # ------------------------------------------------------------------ imagination
    def img_step(self, state: State, action: Tensor, sample: bool = True) -> State:
        """One prior step ``state x (N, A) -> {"deter", "stoch", "hidden", "logit"}``."""
        prev = state["stoch"].flatten(1)
        x = self.img_in(torch.cat([prev, self._clip(action)], -1))
        hidden = torch.view_as_complex(state["hidden"].contiguous())
        y, hidden = self.core.step(x, hidden)
        deter = self.out_proj(y)
        logit = self.prior_logit(deter)
        stoch = sample_onehot(self.logprobs(logit), mode=not sample)
        return {
            "deter": deter,
            "stoch": stoch,
            "hidden": torch.view_as_real(hidden),
            "logit": logit,
        }

    # ------------------------------------------------------------------ losses
    def kl_losses(self, post_logit: Tensor, prior_logit: Tensor) -> tuple[dict[str, Tensor], dict]:
        """Dynamics and representation KLs ``(B, T)`` with free nats, and entropy metrics."""
        post = self.logprobs(post_logit)
        prior = self.logprobs(prior_logit)
        dyn = categorical_kl(post.detach(), prior)
        rep = categorical_kl(post, prior.detach())
        metrics = {
            "prior_ent": categorical_entropy(prior).mean().detach(),
            "post_ent": categorical_entropy(post).mean().detach(),
            "kl": dyn.mean().detach(),
        }
        if self.free_nats:
            dyn = dyn.clamp(min=self.free_nats)
            rep = rep.clamp(min=self.free_nats)
        return {"dyn": dyn, "rep": rep}, metrics


def features(state: State, parts: list[str] | tuple[str, ...]) -> Tensor:
    """Concatenated ``parts`` of a state, each flattened over its own axes: ``(..., F)``."""
    lead = state["deter"].dim() - 1
    return torch.cat([state[p].flatten(lead) for p in parts], -1)


def feature_size(
    deter: int, stoch: int, classes: int, layers: int, ssm_state: int, parts: list[str]
) -> int:
    """Size of :func:`features` for ``parts``."""
    sizes = {"deter": deter, "stoch": stoch * classes, "hidden": layers * ssm_state * 2}
    return sum(sizes[p] for p in parts)
