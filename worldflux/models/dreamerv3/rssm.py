"""DreamerV3's recurrent state-space model with a block-diagonal GRU.

Facts from danijar/dreamerv3 ``dreamerv3/rssm.py`` @ e3f0224 (class ``RSSM``): the state is a
deterministic vector ``deter`` and ``stoch`` categorical latents of ``classes`` classes. One
recurrent step embeds ``deter``, the flattened ``stoch`` and the (magnitude-clipped) action with
three dense layers of ``hidden`` units, appends that embedding to each of the ``blocks`` slices of
``deter``, and applies ``dynlayers`` block-diagonal dense layers and a block-diagonal GRU
(``reset, cand, update`` gates, update bias -1). The posterior reads ``[deter, embed]`` through
``obslayers`` dense layers, the prior reads ``deter`` through ``imglayers``. Latents are sampled
straight-through from categoricals mixed with 1% uniform; the KL terms are clipped below at
``free_nats``.

Axis legend: ``B`` batch, ``T`` time, ``N`` flattened batch, ``D`` deter, ``S`` stoch latents,
``K`` classes, ``E`` embedding, ``A`` action size, ``G`` blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldflux.nn.distributions import sample_onehot, unimix_logprobs
from worldflux.nn.layers import BlockLinear, Dense, Linear, NormAct

State = dict[str, Tensor]


def categorical_kl(lhs: Tensor, rhs: Tensor) -> Tensor:
    """``KL(lhs || rhs)`` of log-probabilities ``(..., S, K)``, summed over latents: ``(...)``."""
    return (lhs.exp() * (lhs - rhs)).sum((-2, -1))


def categorical_entropy(logprobs: Tensor) -> Tensor:
    """Entropy ``(...)`` of log-probabilities ``(..., S, K)``, summed over latents."""
    return -(logprobs.exp() * logprobs).sum((-2, -1))


class RSSM(nn.Module):
    """The recurrent state-space model (``dyn: rssm``).

    Args:
        deter, hidden, stoch, classes: state and layer sizes (family config).
        embed_dim: size of the encoder's output.
        action_dim: size of the action vector.
        blocks: number of GRU blocks.
        imglayers, obslayers, dynlayers: hidden layers of the prior, posterior and core.
        unimix: uniform mixture of the latent categoricals.
        outscale: output scale of the logit layers.
        free_nats: lower clip of each KL term.
        absolute: posterior from the embedding alone (without ``deter``).
        act, norm: activation and norm of hidden layers.
    """

    def __init__(
        self,
        deter: int,
        hidden: int,
        stoch: int,
        classes: int,
        embed_dim: int,
        action_dim: int,
        blocks: int = 8,
        imglayers: int = 2,
        obslayers: int = 1,
        dynlayers: int = 1,
        unimix: float = 0.01,
        outscale: float = 1.0,
        free_nats: float = 1.0,
        absolute: bool = False,
        act: str = "silu",
        norm: str = "rms",
    ) -> None:
        super().__init__()
        self.deter, self.hidden, self.stoch, self.classes = deter, hidden, stoch, classes
        self.blocks, self.unimix, self.free_nats, self.absolute = (
            blocks,
            unimix,
            free_nats,
            absolute,
        )
        self.dynin0 = Dense(deter, hidden, norm, act)
        self.dynin1 = Dense(stoch * classes, hidden, norm, act)
        self.dynin2 = Dense(action_dim, hidden, norm, act)
        width = deter // blocks
        layers, in_dim = [], deter + 3 * hidden * blocks
        for _ in range(dynlayers):
            layers.append(
                nn.ModuleDict(
                    {
                        "linear": BlockLinear(in_dim, deter, blocks),
                        "normact": NormAct(norm, deter, act),
                    }
                )
            )
            in_dim = deter
        self.dynhid = nn.ModuleList(layers)
        self.dyngru = BlockLinear(in_dim, 3 * deter, blocks)
        self._width = width
        obs_in = embed_dim if absolute else deter + embed_dim
        self.obs = nn.Sequential(
            *[Dense(obs_in if i == 0 else hidden, hidden, norm, act) for i in range(obslayers)]
        )
        self.obslogit = Linear(hidden if obslayers else obs_in, stoch * classes, outscale)
        self.prior = nn.Sequential(
            *[Dense(deter if i == 0 else hidden, hidden, norm, act) for i in range(imglayers)]
        )
        self.priorlogit = Linear(hidden if imglayers else deter, stoch * classes, outscale)

    # ------------------------------------------------------------------ state
    def initial(self, batch_size: int, device: torch.device | None = None) -> State:
        """Zero ``deter (B, D)`` and ``stoch (B, S, K)``."""
        dev = device or self.priorlogit.weight.device
        return {
            "deter": torch.zeros(batch_size, self.deter, device=dev),
            "stoch": torch.zeros(batch_size, self.stoch, self.classes, device=dev),
        }

    def logprobs(self, logit: Tensor) -> Tensor:
        """Unimix log-probabilities of raw logits ``(..., S, K)``."""
        return unimix_logprobs(logit, self.unimix)

    # ------------------------------------------------------------------ core
    def core(self, deter: Tensor, stoch: Tensor, action: Tensor) -> Tensor:
        """One block-GRU step ``(N, D), (N, S, K), (N, A) -> (N, D)``."""
        n, g, w = deter.shape[0], self.blocks, self._width
        action = action / action.abs().clamp(min=1.0).detach()
        x = torch.cat(
            [self.dynin0(deter), self.dynin1(stoch.reshape(n, -1)), self.dynin2(action)], -1
        )
        for i, module in enumerate(self.dynhid):
            layer = cast(nn.ModuleDict, module)
            lin = cast(BlockLinear, layer["linear"])
            if i == 0:
                # Each block's input is [deter_g, x]; x is shared, so its product with the
                # block weights is one dense matmul instead of G copies of x.
                wd, wx = lin.weight[:, :w], lin.weight[:, w:]  # G W W, G 3h W
                y = torch.bmm(deter.view(n, g, w).transpose(0, 1), wd).transpose(0, 1)
                shared = torch.addmm(lin.bias, x, wx.permute(1, 0, 2).reshape(x.shape[-1], -1))
                # adding into the contiguous dense part also undoes the block transpose
                y = shared.view(n, g, w).add_(y).view(n, -1)
            else:
                y = lin(x)
            x = layer["normact"](y)
        gates = self.dyngru(x).view(n, g, 3, w)
        reset = torch.sigmoid(gates[:, :, 0])
        cand = torch.tanh(reset * gates[:, :, 1])
        update = torch.sigmoid(gates[:, :, 2] - 1.0)
        # under autocast the gates come out in bf16/fp16 while the carried state stays in
        # float32 (as in the official code's bf16 compute, fp32 state); lerp needs one dtype
        d = deter.view(n, g, w)
        return torch.lerp(d, cand.to(d.dtype), update.to(d.dtype)).reshape(n, self.deter)

    def prior_logit(self, deter: Tensor) -> Tensor:
        """Prior logits ``(..., S, K)`` from ``deter (..., D)``."""
        x = self.priorlogit(self.prior(deter))
        return x.view(*deter.shape[:-1], self.stoch, self.classes)

    # ------------------------------------------------------------------ filtering
    def observe(
        self, embed: Tensor, action: Tensor, reset: Tensor, state: State, sample: bool = True
    ) -> tuple[State, State]:
        """Posterior over a sequence.

        Args:
            embed: encoder outputs ``(B, T, E)``.
            action: previous actions ``(B, T, A)``.
            reset: episode starts ``(B, T)`` bool; the state and action are zeroed there.
            state: carry ``{"deter": (B, D), "stoch": (B, S, K)}``.
            sample: sample the latents (else take the mode).

        Returns:
            ``(states, last)``: ``states`` holds ``deter (B, T, D)``, ``stoch (B, T, S, K)`` and the
            raw posterior ``logit (B, T, S, K)``; ``last`` is the carry after the final step.
        """
        b, t = embed.shape[:2]
        first = cast(Dense, self.obs[0]).linear if len(self.obs) else self.obslogit
        if self.absolute:
            emb_part = F.linear(embed, first.weight, first.bias)
            w_deter = None
        else:
            w_deter = first.weight[:, : self.deter]
            # The embedding's share of the first posterior layer, for all steps at once.
            emb_part = F.linear(embed, first.weight[:, self.deter :], first.bias)
        keep = (~reset).to(embed.dtype)
        deter, stoch = state["deter"], state["stoch"]
        deters, stochs, logits = [], [], []
        for i in range(t):
            k = keep[:, i, None]
            deter = self.core(deter * k, stoch * k[..., None], action[:, i] * k)
            x = emb_part[:, i] if w_deter is None else emb_part[:, i] + deter @ w_deter.t()
            logit = self._post_head(x).view(b, self.stoch, self.classes)
            stoch = sample_onehot(self.logprobs(logit), mode=not sample)
            deters.append(deter)
            stochs.append(stoch)
            logits.append(logit)
        states = {
            "deter": torch.stack(deters, 1),
            "stoch": torch.stack(stochs, 1),
            "logit": torch.stack(logits, 1),
        }
        return states, {"deter": deter, "stoch": stoch}

    def _post_head(self, pre: Tensor) -> Tensor:
        """The posterior layers after the first linear map (given its output ``pre``)."""
        if not len(self.obs):
            return pre
        x = cast(Dense, self.obs[0]).normact(pre)
        for layer in list(self.obs)[1:]:
            x = layer(x)
        return self.obslogit(x)

    # ------------------------------------------------------------------ imagination
    def img_step(self, state: State, action: Tensor, sample: bool = True) -> State:
        """One prior step ``{"deter", "stoch"} x (N, A) -> {"deter", "stoch", "logit"}``."""
        deter = self.core(state["deter"], state["stoch"], action)
        logit = self.prior_logit(deter)
        stoch = sample_onehot(self.logprobs(logit), mode=not sample)
        return {"deter": deter, "stoch": stoch, "logit": logit}

    def imagine(
        self,
        state: State,
        policy: Callable[[State], Tensor] | Tensor,
        length: int,
        sample: bool = True,
    ) -> tuple[State, Tensor]:
        """Roll the prior forward ``length`` steps.

        Args:
            state: start states ``{"deter": (N, D), "stoch": (N, S, K)}``.
            policy: a function from a (detached) state to actions ``(N, A)``, or fixed actions
                ``(N, length, A)``.
            length: number of steps.
            sample: sample the latents (else take the mode).

        Returns:
            ``(states, actions)``: the ``length`` imagined states (``(N, length, ...)``) and the
            action taken before each of them ``(N, length, A)``.
        """
        states, actions = [], []
        for i in range(length):
            if callable(policy):
                action = policy({k: v.detach() for k, v in state.items()})
            else:
                action = policy[:, i]
            state = self.img_step(state, action, sample)
            states.append(state)
            actions.append(action)
        stacked = {k: torch.stack([s[k] for s in states], 1) for k in states[0]}
        return stacked, torch.stack(actions, 1)

    @torch.no_grad()
    def imagine_features(
        self, state: State, feat0: Tensor, policy: Callable[[Tensor], Tensor], length: int
    ) -> tuple[Tensor, Tensor]:
        """Imagine under ``policy`` (a function of features) without gradients.

        Args:
            state: start states ``{"deter": (N, D), "stoch": (N, S, K)}``.
            feat0: their features ``(N, D + S*K)``.
            policy: maps features ``(N, F)`` to actions ``(N, A)``.
            length: imagined steps ``H``.

        Returns:
            ``(feat, act)``: features ``(N, H + 1, F)`` of the start and imagined states (written
            in place into one buffer) and the action taken in each of them ``(N, H + 1, A)``.
        """
        n, d = feat0.shape[0], self.deter
        feat = feat0.new_empty(n, length + 1, feat0.shape[-1])
        feat[:, 0] = feat0
        actions = []
        for i in range(length):
            action = policy(feat[:, i])
            actions.append(action)
            state = self.img_step(state, action)
            feat[:, i + 1, :d] = state["deter"]
            feat[:, i + 1, d:] = state["stoch"].reshape(n, -1)
        actions.append(policy(feat[:, length]))
        return feat, torch.stack(actions, 1)

    # ------------------------------------------------------------------ losses
    def kl_losses(self, post_logit: Tensor, deter: Tensor) -> tuple[dict[str, Tensor], dict]:
        """Dynamics and representation losses ``(B, T)`` with free nats, and entropy metrics."""
        post = self.logprobs(post_logit)
        prior = self.logprobs(self.prior_logit(deter))
        dyn = categorical_kl(post.detach(), prior)
        rep = categorical_kl(post, prior.detach())
        metrics = {
            "dyn_ent": categorical_entropy(prior).mean().detach(),
            "rep_ent": categorical_entropy(post).mean().detach(),
            "kl": dyn.mean().detach(),
        }
        if self.free_nats:
            dyn = dyn.clamp(min=self.free_nats)
            rep = rep.clamp(min=self.free_nats)
        return {"dyn": dyn, "rep": rep}, metrics
