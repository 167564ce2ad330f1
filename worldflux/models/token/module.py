"""token: IRIS, a discrete-token world model (VQ autoencoder + GPT) and an actor-critic.

Paper: Micheli, Alonso & Fleuret, "Transformers are Sample-Efficient World Models", ICLR 2023
(arXiv:2209.00588). Reference implementation: eloialonso/iris at commit ``24326aa``
(``src/models/``, ``src/envs/world_model_env.py``, ``src/trainer.py``, ``config/``); its
parameter counts are in ``conf/model/token/base.yaml``. Facts only; the code is ours.

Three parts, each trained by its own phase (``conf/model/token/base.yaml``):

* ``tokenizer``: frames -> ``K`` codebook ids (VQ-VAE); loss = codebook + commitment (beta 1)
  + L1 reconstruction + LPIPS;
* ``world_model``: a GPT over blocks of ``K`` frame tokens and one action token; cross-entropy
  on the next frame's tokens, the reward's sign and the episode end;
* ``actor_critic``: CNN + LSTM on reconstructed frames, trained in imagination (burn-in on real
  frames, then ``imagine_horizon`` steps sampled from the GPT with a key-value cache) with
  REINFORCE against a value baseline, lambda-returns and an entropy bonus.

Batch mapping: the replay stores at step ``t`` the action that *led* to ``obs[t]`` and the reward
received on arriving; IRIS pairs ``obs[t]`` with the action *taken* there. So IRIS's step ``t``
is ``(obs[t], action[t+1], reward[t+1], terminal[t+1])`` and a world-model batch of 20 IRIS steps
is 21 replay steps.

Axis legend: ``B`` batch, ``T`` time, ``K`` tokens per frame, ``V`` vocabulary, ``A`` actions,
``H`` horizon.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Categorical

from worldflux.core.model import LossOutput, WorldModel
from worldflux.core.protocols import Rollout
from worldflux.errors import ShapeError
from worldflux.models.token.actor_critic import lambda_returns
from worldflux.models.token.config import TokenConfig
from worldflux.models.token.imagination import TokenEnv, imagine
from worldflux.models.token.weights import ReleasedWeights
from worldflux.nn.layers import count_parameters

log = logging.getLogger(__name__)

#: Exploration of the reference's collection (config/trainer.yaml collection.train/test).
TRAIN_EPSILON, EVAL_TEMPERATURE = 0.01, 0.5


class Token(ReleasedWeights, WorldModel):
    """IRIS (see the module docstring). Parts: ``tokenizer``, ``world_model``, ``actor_critic``."""

    config: TokenConfig
    config_class = TokenConfig
    capabilities = frozenset({"encode", "loss", "act", "rollout"})
    component_slots = ("tokenizer", "world_model", "actor_critic")
    fsdp_wrap_units = ("Block", "ResBlock", "AttnBlock")  # GPT blocks, tokenizer blocks

    def __init__(self, config: Mapping[str, Any] | TokenConfig) -> None:
        super().__init__(config)
        c = self.config
        side = c.obs_shape[1]
        self.tokenizer = self.build_component(
            "tokenizer",
            resolution=side,
            vocab_size=c.vocab_size,
            embed_dim=c.embed_dim,
            ch=c.ch,
            ch_mult=list(c.ch_mult),
            num_res_blocks=c.num_res_blocks,
            attn_resolutions=list(c.attn_resolutions),
            z_channels=c.z_channels,
            dropout=c.dropout,
            norm_groups=c.norm_groups,
        )
        self.world_model = self.build_component(
            "world_model",
            vocab_size=c.vocab_size,
            action_dim=c.action_dim,
            tokens_per_block=c.tokens_per_block,
            max_blocks=c.max_blocks,
            num_layers=c.num_layers,
            num_heads=c.num_heads,
            embed_dim=c.wm_embed_dim,
            embed_pdrop=c.embed_pdrop,
            resid_pdrop=c.resid_pdrop,
            attn_pdrop=c.attn_pdrop,
        )
        self.actor_critic = self.build_component(
            "actor_critic",
            resolution=side,
            action_dim=c.action_dim,
            channels=list(c.ac_channels),
            lstm_dim=c.lstm_dim,
        )
        self._lpips_state: Any = None  # not loaded yet; False once found missing

    # ------------------------------------------------------------------ parts
    @property
    def world_model_embeddings(self) -> nn.ModuleList:
        """The GPT's embedding tables (IRIS decays Linear weights only; the world-model phase
        puts these in a group without weight decay)."""
        wm = self.world_model
        return nn.ModuleList([m for m in wm.modules() if isinstance(m, nn.Embedding)])

    def parameter_breakdown(self) -> dict[str, int]:
        """Trainable parameters per part (the reference's counts' breakdown)."""
        return {slot: count_parameters(getattr(self, slot)) for slot in self.component_slots}

    @property
    def lpips(self) -> Any:
        """The frozen LPIPS network, or ``None`` (kept out of the state dict: it is not ours)."""
        if self._lpips_state is None:
            self._lpips_state = False
            if self.config.perceptual_weight > 0:
                from worldflux.nn.lpips import load_lpips

                net, why = load_lpips(self.config.lpips_weights)
                if net is None:
                    log.warning("token: %s; training without the perceptual (LPIPS) term", why)
                else:
                    log.info("token: %s", why)
                    self.set_lpips(net)
        if self._lpips_state is False:
            return None
        net = self._lpips_state
        dev = self.tokenizer.embedding.weight.device
        if net.shift.device != dev:
            self.set_lpips(net.to(dev))
        return self._lpips_state

    def set_lpips(self, net: nn.Module | None) -> None:
        """Use ``net`` (a frozen :class:`~worldflux.nn.lpips.LPIPS`) for the perceptual term, or
        none. It is kept outside the module tree, so it is neither saved nor counted."""
        self.__dict__["_lpips_state"] = False if net is None else net

    def load_official(self, path: str, parts: tuple[str, ...] | None = None) -> None:
        """Load some ``parts`` of a released IRIS agent (``pretrained_models/<Game>.pt`` of the
        Hugging Face repo ``eloialonso/iris``) or any state dict in the reference's layout, into
        this model as built; ``create_world_model(..., weights=path)`` loads every part and reads
        the action count from the file. See ``weights.py``."""
        from worldflux.models.token.weights import load_official

        load_official(self, path, parts)

    # ------------------------------------------------------------------ inputs
    def frames(self, obs: Any, lead: int) -> Tensor:
        """Observations ``(*lead, 3, H, W)`` (uint8 or float in [0, 1]) -> floats in ``[-1, 1]``."""
        if isinstance(obs, Mapping):
            if len(obs) != 1:
                raise ShapeError(f"IRIS takes one image observation, got keys {sorted(obs)}")
            obs = next(iter(obs.values()))
        x = torch.as_tensor(obs, device=self.tokenizer.embedding.weight.device)
        shape = tuple(self.config.obs_shape)
        if x.dim() != lead + 3 or tuple(x.shape[lead:]) != shape:
            dims = ", ".join(("B", "T")[:lead])
            raise ShapeError(
                f"frames must have shape ({dims}, {', '.join(map(str, shape))}), got "
                f"{tuple(x.shape)}"
            )
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        return x * 2 - 1

    def action_ids(self, action: Tensor) -> Tensor:
        """Action ids from one-hot ``(..., A)`` actions (or ids ``(...)``), range-checked."""
        a = torch.as_tensor(action, device=self.tokenizer.embedding.weight.device)
        if a.is_floating_point():
            if a.shape[-1] != self.config.action_dim:
                raise ShapeError(
                    f"one-hot actions must end in {self.config.action_dim}, got {tuple(a.shape)}"
                )
            return a.argmax(-1)
        if a.numel() and (a.min() < 0 or a.max() >= self.config.action_dim):
            raise ShapeError(
                f"action ids must be in [0, {self.config.action_dim - 1}], got "
                f"[{int(a.min())}, {int(a.max())}]"
            )
        return a.long()

    # ------------------------------------------------------------------ capabilities
    def encode(self, obs: Any) -> Tensor:
        """Token ids ``(B, K)`` of frames ``(B, 3, H, W)`` (or ``(B, T, K)`` of ``(B, T, ...)``)."""
        lead = 2 if torch.as_tensor(obs).dim() == 5 else 1
        with torch.no_grad():
            return self.tokenizer.encode(self.frames(obs, lead)).tokens

    def rollout(self, state: Tensor, actions: Tensor) -> Rollout:
        """Sample frames (as tokens), rewards and ends from token frames ``(B, K)`` under
        actions ``(B, H, A)`` (one-hot) with the key-value cache."""
        if state.dim() != 2 or state.shape[1] != self.config.tokens_per_frame:
            raise ShapeError(
                f"rollout starts from token frames (B, {self.config.tokens_per_frame}), got "
                f"{tuple(state.shape)}"
            )
        ids = self.action_ids(actions)
        env = TokenEnv(self.tokenizer, self.world_model, state)
        frames, rewards, ends = [], [], []
        for h in range(ids.shape[1]):
            r, e = env.step(ids[:, h])
            frames.append(env.tokens), rewards.append(r), ends.append(e)
        return Rollout(
            states=torch.stack(frames, 1),
            rewards=torch.stack(rewards, 1),
            continues=1.0 - torch.stack(ends, 1).float(),
            actions=torch.as_tensor(actions),
        )

    def act(
        self,
        obs: Any,
        state: Any = None,
        *,
        first: Tensor | None = None,
        eval_mode: bool = False,
        task: Any = None,
    ) -> tuple[Tensor, Any]:
        """One-hot actions ``(B, A)`` from frames ``(B, 3, H, W)``; ``state`` is the LSTM's
        ``(h, c)``, reset where ``first``. Training samples at temperature 1 with
        epsilon 0.01, evaluation at temperature 0.5 (the reference's collection settings)."""
        x = self.frames(obs, 1)
        b = x.shape[0]
        with torch.no_grad():
            frame = self.tokenizer.decode(self.tokenizer.encode(x).z_q).add(1).div(2).clamp(0, 1)
            zero = self.actor_critic.initial_state(b)
            if state is None:
                state = zero
            elif first is not None:
                reset = torch.as_tensor(first, device=x.device).reshape(b, 1).bool()
                state = tuple(torch.where(reset, z, s) for z, s in zip(zero, state, strict=True))
            logits, _, state = self.actor_critic(frame, state)
            temperature = EVAL_TEMPERATURE if eval_mode else 1.0
            ids = Categorical(logits=logits / temperature).sample()
            if not eval_mode:
                rand = torch.randint(0, self.config.action_dim, (b,), device=x.device)
                ids = torch.where(torch.rand(b, device=x.device) < TRAIN_EPSILON, rand, ids)
        return F.one_hot(ids, self.config.action_dim).float(), state

    # ------------------------------------------------------------------ losses
    def tokenizer_loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """VQ codebook + commitment, L1 reconstruction and LPIPS on every frame of the batch."""
        x = self.frames(batch["obs"], 2).flatten(0, 1)
        z, z_q, rec = self.tokenizer(x)
        codebook = (z.detach() - z_q).pow(2).mean()
        commit = (z - z_q.detach()).pow(2).mean()
        parts = {
            "commitment": codebook + self.config.commitment_beta * commit,
            "reconstruction": (x - rec).abs().mean(),
        }
        net = self.lpips
        if net is not None:
            dist = net(x, rec, training=self.tokenizer.training)
            parts["perceptual"] = self.config.perceptual_weight * dist.mean()
        metrics = {"tokenizer/codebook": codebook.detach(), "tokenizer/commit": commit.detach()}
        return LossOutput(sum(parts.values()), parts, metrics)  # type: ignore[arg-type]

    def world_model_loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """Cross-entropy on next frame tokens, reward sign and episode end (see the docstring)."""
        from worldflux.models.token.losses import world_model_targets

        x = self.frames(batch["obs"], 2)
        t = world_model_targets(self, batch, x)
        out = self.world_model(t.tokens)
        ce = F.cross_entropy
        obs_logits = out.obs[:, :-1].flatten(0, 1)
        loss_obs = _masked_mean(
            ce(obs_logits, t.obs_labels.clamp(min=0), reduction="none"), t.obs_labels >= 0
        )
        loss_rew = _masked_mean(
            ce(out.reward.flatten(0, 1), t.reward_labels.clamp(min=0), reduction="none"), t.valid
        )
        loss_end = _masked_mean(
            ce(out.end.flatten(0, 1), t.end_labels.clamp(min=0), reduction="none"), t.valid
        )
        hit = (obs_logits.argmax(-1) == t.obs_labels).float()
        metrics = {"world_model/obs_accuracy": _masked_mean(hit, t.obs_labels >= 0).detach()}
        parts = {"obs": loss_obs, "reward": loss_rew, "end": loss_end}
        return LossOutput(loss_obs + loss_rew + loss_end, parts, metrics)

    def actor_critic_loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """REINFORCE with a value baseline on imagined trajectories, value regression to
        lambda-returns, entropy bonus."""
        c = self.config
        x = self.frames(batch["obs"], 2)
        first = torch.as_tensor(batch["first"], device=x.device).bool()
        # a burn-in step counts when no episode starts after it (padding in the reference)
        later = first.flip(1).long().cumsum(1).flip(1) - first.long()
        mask = later == 0
        burn = x[:, :-1] if x.shape[1] > 1 else None
        im = imagine(
            self.tokenizer,
            self.world_model,
            self.actor_critic,
            burn,
            mask[:, :-1],
            x[:, -1],
            c.imagine_horizon,
            self.imagination_env(x[:, -1]),
        )
        with torch.no_grad():
            returns = lambda_returns(im.rewards, im.values, im.ends, c.gamma, c.lambda_)[:, :-1]
        values = im.values[:, :-1]
        dist = Categorical(logits=im.logits[:, :-1])
        loss_actions = -(dist.log_prob(im.actions[:, :-1]) * (returns - values.detach())).mean()
        loss_entropy = -c.entropy_weight * dist.entropy().mean()
        loss_values = F.mse_loss(values, returns)
        parts = {"actions": loss_actions, "values": loss_values, "entropy": loss_entropy}
        metrics = {"actor_critic/imagined_reward": im.rewards.mean().detach()}
        return LossOutput(loss_actions + loss_values + loss_entropy, parts, metrics)

    def imagination_env(self, start: Tensor) -> TokenEnv | None:
        """Where the actor-critic imagines from start frames ``(B, 3, H, W)``: ``None`` means
        the world model (``TokenEnv``); ``scripts/token_true_dynamics.py`` replaces it with the
        true Catch dynamics on an instance."""
        return None

    def phase_loss(
        self, name: str, batch: Mapping[str, Any], outputs: Mapping[str, LossOutput]
    ) -> LossOutput:
        """The loss of phase ``tokenizer``, ``world_model`` or ``actor_critic``."""
        losses = {
            "tokenizer": self.tokenizer_loss,
            "world_model": self.world_model_loss,
            "actor_critic": self.actor_critic_loss,
        }
        if name not in losses:
            raise ShapeError(f"IRIS has phases {sorted(losses)}, not {name!r}")
        return losses[name](batch)

    def loss(self, batch: Mapping[str, Any]) -> LossOutput:
        """All three losses on one batch of sequences (``total`` is their sum).

        The tokenizer reads every frame, the world model the first ``min(T, max_blocks + 1)``
        steps, and the actor-critic burns in on all but the last frame.
        """
        obs = batch["obs"]
        t = min(torch.as_tensor(obs).shape[1], self.config.max_blocks + 1)
        wm_batch = {
            k: v[:, :t] if k in ("obs", "action", "reward", "first", "terminal") else v
            for k, v in batch.items()
        }
        parts = [
            self.tokenizer_loss(batch),
            self.world_model_loss(wm_batch),
            self.actor_critic_loss(batch),
        ]
        comps = {
            f"{n}/{k}": v
            for n, o in zip(("tokenizer", "world_model", "actor_critic"), parts)
            for k, v in o.components.items()
        }
        metrics = {k: v for o in parts for k, v in o.metrics.items()}
        return LossOutput(parts[0].total + parts[1].total + parts[2].total, comps, metrics)


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` where ``mask`` (0 when nothing is masked in, instead of NaN)."""
    m = mask.reshape(x.shape).to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1)
