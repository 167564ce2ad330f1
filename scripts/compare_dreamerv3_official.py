"""Compare worldflux's DreamerV3 with the official JAX code: same weights, same inputs, same outputs.

The official agent is danijar/dreamerv3 at commit ``e3f0224`` (not vendored: pass a checkout of it
with ``--official``). The comparison runs in two steps across two Python environments:

1. ``dump`` (run with the JAX environment's Python, which has ``jax``, ``ninjax``, ``elements``,
   ... installed): builds the official ``dreamerv3.agent.Agent`` model (config ``defaults`` +
   ``size1m``, compute dtype float32, CPU), initialises it, perturbs every weight, bias and norm
   scale (the zero-initialised reward/critic outputs and unit norm scales would hide layout
   errors), runs its parts on fixed inputs and writes every parameter, every output, the
   gradients of the total loss and the parameter change of three optimiser steps (``agent.opt``
   with a 4-step warmup) to an ``.npz``. The sampled latents (``stoch``) of the posterior and of
   imagination are saved as well.
2. ``compare`` (run with worldflux's Python): builds ``dreamerv3:size1m`` for the same spaces,
   loads the official weights through the explicit name/layout mapping of :func:`param_map`, runs
   the same inputs and prints the largest absolute differences. The official latent samples are
   replayed in place of our own sampling (``rssm.sample_onehot`` is patched), so the posterior and
   prior logits, GRU states, decoder, heads, losses and gradients are compared exactly; the
   official gradients are then fed to our ``LaProp`` for the optimiser check. Imagination uses
   fixed actions instead of policy samples (the losses are functions of the actions).

``all`` does both (the dump through ``--jax-python``)::

    python scripts/compare_dreamerv3_official.py all \
        --official /tmp/dreamerv3_official --jax-python /tmp/jaxenv/bin/python

Settings: ``vector`` (24-dim vector observation, 6 continuous actions, the official dmc_proprio
setting) and ``image`` (64x64x3 uint8 image, 6 discrete actions, the Atari-style setting).

Layout mapping (official -> ours):

* dense ``kernel (in, out)`` -> ``nn.Linear.weight (out, in)`` (transpose); ``bias`` as is;
* RMSNorm ``scale`` -> ``RMSNorm.scale``;
* block-diagonal ``kernel (G, in/G, out/G)`` -> ``BlockLinear.weight`` (same layout);
* conv ``kernel HWIO`` -> ``Conv2d.weight OIHW``;
* ``dynhid0`` sees per block ``[deter_g, embeddings of deter, stoch, action]`` (the official
  ``group2flat(concat([flat2group(deter), x.repeat(g)]))``); our ``core`` splits its weight into
  the ``deter_g`` rows and the shared rows, same tensor;
* the block GRU output ``dyngru`` keeps the official ``(G, ..., 3 * deter/G)`` layout: per block,
  ``[reset, cand, update]`` chunks, which is the order our ``core`` splits them in;
* the decoder seed ``sp0`` is block-diagonal over ``(g h w c)`` outputs, rearranged to
  ``h w (g c)`` on both sides;
* the two-hot ``head/logits``, binary ``head/logit`` and policy ``head/action/{mean,stddev,logits}``
  output layers map to ``out``, ``out``, ``mean``/``stddev``/``logits``.

The official categorical policy ignores its ``unimix`` (see docs/dreamerv3.md), so ours is built
with ``policy.unimix = 0`` for the discrete setting.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

B, T, H = 2, 5, 3  # batch, sequence length, imagined steps
OBS_DIM, ACT_DIM = 24, 6
SETTINGS = ("vector", "image")
TRAINED = ("enc", "dyn", "dec", "rew", "con", "pol", "val")
OPT_STEPS, OPT_WARMUP = 3, 4  # optimiser check: steps on fixed gradients, warmup length


# ---------------------------------------------------------------------------------------- inputs
def make_inputs(setting: str, seed: int = 0) -> dict:
    """Fixed inputs (numpy) shared by both sides."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if setting == "vector":
        obs = (rng.standard_normal((B, T, OBS_DIM)) * 3.0).astype(np.float32)
        act = rng.uniform(-1.5, 1.5, (B, T, ACT_DIM)).astype(np.float32)  # also tests clipping
        imgact = rng.uniform(-1.0, 1.0, (B * T, H + 1, ACT_DIM)).astype(np.float32)
    else:
        obs = rng.integers(0, 256, (B, T, 64, 64, 3)).astype(np.uint8)
        act = rng.integers(0, ACT_DIM, (B, T)).astype(np.int32)
        imgact = rng.integers(0, ACT_DIM, (B * T, H + 1)).astype(np.int32)
    first = np.zeros((B, T), bool)
    first[:, 0] = True
    first[1, 3] = True  # a reset inside the sequence
    terminal = np.zeros((B, T), bool)
    terminal[1, 2] = True
    last = terminal.copy()
    last[:, :-1] |= first[:, 1:]
    reward = (rng.standard_normal((B, T)) * 2.0).astype(np.float32)
    return dict(
        obs=obs, act=act, first=first, terminal=terminal, last=last, reward=reward, imgact=imgact
    )


# ------------------------------------------------------------------------------- official (JAX)
def dump(setting: str, official: str, out: str) -> None:
    """Build the official model, run it on :func:`make_inputs` and save params + outputs."""
    sys.path.insert(0, official)
    import elements
    import embodied.jax.nets as nn
    import jax
    import jax.numpy as jnp
    import ninjax as nj
    import numpy as np
    import ruamel.yaml as yaml

    jax.config.update("jax_platforms", "cpu")
    nn.COMPUTE_DTYPE = jnp.float32  # the official default is bfloat16 (GPU); compare in fp32
    from dreamerv3 import agent as agentlib

    configs = yaml.YAML(typ="safe").load(Path(official, "dreamerv3", "configs.yaml").read_text())
    config = elements.Config(configs["defaults"]).update(configs["size1m"])
    acfg = elements.Config(
        **config.agent, jax=config.jax, batch_size=B, batch_length=T, replay_context=0,
        report_length=T, replica=0, replicas=1, seed=0, logdir="/tmp/unused",
    )  # fmt: skip
    inp = make_inputs(setting)
    if setting == "vector":
        obs_space = {"obs": elements.Space(np.float32, (OBS_DIM,))}
        act_space = {"action": elements.Space(np.float32, (ACT_DIM,), -1, 1)}
    else:
        obs_space = {"obs": elements.Space(np.uint8, (64, 64, 3))}
        act_space = {"action": elements.Space(np.int32, (), 0, ACT_DIM)}
    obs_space.update(
        reward=elements.Space(np.float32),
        is_first=elements.Space(bool),
        is_last=elements.Space(bool),
        is_terminal=elements.Space(bool),
    )
    # The model class without the embodied.jax.Agent wrapper (no mesh, jit or replay needed).
    model = object.__new__(agentlib.Agent)
    model.__init__(obs_space, act_space, acfg)

    obs = {
        "obs": jnp.asarray(inp["obs"]),
        "reward": jnp.asarray(inp["reward"]),
        "is_first": jnp.asarray(inp["first"]),
        "is_last": jnp.asarray(inp["last"]),
        "is_terminal": jnp.asarray(inp["terminal"]),
    }
    prevact = {"action": jnp.asarray(inp["act"])}
    imgact = {"action": jnp.asarray(inp["imgact"])}
    reset = obs["is_first"]
    tensor = model.feat2tensor

    def run():
        o = {}
        carry = model.dyn.initial(B)
        _, _, tokens = model.enc({}, obs, reset, training=True)
        o["tokens"] = tokens
        # world model (dyn.loss runs observe: posterior logits, samples, KL terms)
        _, entries, los, repfeat, _ = model.dyn.loss(carry, tokens, prevact, reset, True)
        for k in ("deter", "stoch", "logit"):
            o[f"post_{k}"] = repfeat[k]
        o["prior_logit"] = model.dyn._prior(repfeat["deter"])
        o["loss_dyn"], o["loss_rep"] = los["dyn"], los["rep"]
        _, _, recons = model.dec({}, repfeat, reset, True)
        o["dec_pred"] = recons["obs"].pred()
        value = obs["obs"]
        target = jnp.float32(value) / 255 if setting == "image" else value
        o["loss_rec"] = recons["obs"].loss(target)
        feat = tensor(repfeat)
        o["feat"] = feat
        rew = model.rew(feat, 2)
        con = model.con(feat, 2)
        o["rew_pred"], o["loss_rew"] = rew.pred(), rew.loss(obs["reward"])
        contarget = jnp.float32(~obs["is_terminal"]) * (1 - 1 / acfg.horizon)
        o["con_prob"], o["loss_con"] = con.prob(1), con.loss(contarget)
        pol = model.pol(feat, 2)["action"]
        if setting == "vector":
            o["pol_mean"], o["pol_std"] = pol.output.mean, pol.output.stddev
        else:
            o["pol_logits"] = pol.logits
        o["pol_ent"] = pol.entropy()
        o["pol_logp"] = pol.logp(prevact["action"])
        o["val_pred"] = model.val(feat, 2).pred()
        o["slowval_pred"] = model.slowval(feat, 2).pred()
        # imagination from every posterior state under fixed actions (img_step x H)
        starts = {k: repfeat[k].reshape((B * T, *repfeat[k].shape[2:])) for k in ("deter", "stoch")}
        acts = {"action": imgact["action"][:, :H]}
        _, imgfeat, _ = model.dyn.imagine(starts, acts, H, True)
        for k in ("deter", "stoch", "logit"):
            o[f"img_{k}"] = imgfeat[k]
        # actor-critic losses on the start + imagined states with the fixed actions
        first = jax.tree.map(lambda x: x.reshape((B * T, 1, *x.shape[2:])), repfeat)
        first = {k: first[k] for k in ("deter", "stoch")}
        full = jax.tree.map(
            lambda a, b: jnp.concatenate([a, b], 1),
            first,
            {k: imgfeat[k] for k in ("deter", "stoch")},
        )
        inp_ = tensor(jax.lax.stop_gradient(full))  # the agent stops gradients here too
        ilos, iout, _ = agentlib.imag_loss(
            imgact, model.rew(inp_, 2).pred(), model.con(inp_, 2).prob(1),
            model.pol(inp_, 2), model.val(inp_, 2), model.slowval(inp_, 2),
            model.retnorm, model.valnorm, model.advnorm, update=True,
            contdisc=acfg.contdisc, horizon=acfg.horizon, **acfg.imag_loss,
        )  # fmt: skip
        o["loss_policy"], o["loss_value"], o["imag_ret"] = (
            ilos["policy"],
            ilos["value"],
            iout["ret"],
        )
        boot = iout["ret"][:, 0].reshape(B, T)
        rlos, _, _ = agentlib.repl_loss(
            obs["is_last"], obs["is_terminal"], obs["reward"], boot,
            model.val(feat, 2), model.slowval(feat, 2), model.valnorm, update=True,
            horizon=acfg.horizon, **acfg.repl_loss,
        )  # fmt: skip
        o["loss_repval"] = rlos["repval"]
        scales = dict(acfg.loss_scales)
        terms = {"obs": o["loss_rec"], "rew": o["loss_rew"], "con": o["loss_con"],
                 "dyn": o["loss_dyn"], "rep": o["loss_rep"], "policy": o["loss_policy"],
                 "value": o["loss_value"], "repval": o["loss_repval"]}  # fmt: skip
        o["total"] = sum(v.mean() * scales["rec" if k == "obs" else k] for k, v in terms.items())
        return o

    state, _ = nj.pure(run)({}, seed=0, create=True, modify=True)
    # Perturb every weight, bias and norm scale (the reward/critic output layers start at zero
    # and the norms at one, which would hide layout errors), then run again with these weights.
    rng = np.random.default_rng(1)
    params = {}
    for k, v in state.items():
        v = np.asarray(v)
        if k.endswith("/kernel"):
            fan = int(np.prod(v.shape[:-1]))
            v = v + rng.standard_normal(v.shape) * 0.5 / np.sqrt(fan)
        elif k.endswith("/bias") or k.endswith("/scale"):
            v = v + rng.standard_normal(v.shape) * 0.1
        else:  # normaliser statistics and counters: back to their initial zeros
            v = np.zeros_like(v)
        params[k] = jnp.asarray(v.astype(np.asarray(state[k]).dtype))

    def total(params):
        _, outs = nj.pure(run)(params, seed=0, create=False, modify=True)
        return outs["total"], outs

    grads, outs = jax.grad(total, has_aux=True)(params)
    state = params
    # Three optimiser steps (agent.opt with a 4-step warmup) on these gradients.
    import optax

    train = {k: v for k, v in params.items() if k.split("/")[0] in TRAINED}
    opt = model._make_opt(**dict(acfg.opt, warmup=OPT_WARMUP))
    ostate, new = opt.init(train), train
    for _ in range(OPT_STEPS):
        upd, ostate = opt.update({k: grads[k] for k in train}, ostate, new)
        new = optax.apply_updates(new, upd)
    arrays: dict = {f"out/{k}": np.asarray(v, np.float32) for k, v in outs.items()}
    arrays.update({f"delta/{k}": np.asarray(new[k] - train[k]) for k in train})
    arrays.update({f"param/{k}": np.asarray(v) for k, v in state.items()})
    arrays.update({f"grad/{k}": np.asarray(v) for k, v in grads.items()})
    np.savez(out, **arrays)
    print(f"[dump] {setting}: {len(state)} state entries, {len(outs)} outputs -> {out}")


# -------------------------------------------------------------------------------------- ours
def param_map(model, setting: str) -> dict:
    """``{official name: (our tensor, layout)}``; layout in ``dense, same, conv``."""
    m = {}

    def dense(name, lin):
        m[f"{name}/kernel"] = (lin.weight, "dense")
        m[f"{name}/bias"] = (lin.bias, "same")

    def block(name, lin):
        m[f"{name}/kernel"] = (lin.weight, "same")
        m[f"{name}/bias"] = (lin.bias, "same")

    def norm(name, normact):
        m[f"{name}/scale"] = (normact.norm.scale, "same")

    def conv(name, c):
        m[f"{name}/kernel"] = (c.weight, "conv")
        m[f"{name}/bias"] = (c.bias, "same")

    def mlp(prefix, seq):  # nets.MLP: linear{i}, norm{i}
        for i, layer in enumerate(seq):
            dense(f"{prefix}/linear{i}", layer.linear)
            norm(f"{prefix}/norm{i}", layer.normact)

    enc, dyn, dec = model.encoder, model.dynamics, model.decoder
    if setting == "vector":
        for i, layer in enumerate(enc.mlp):
            dense(f"enc/mlp{i}", layer.linear)
            norm(f"enc/mlp{i}norm", layer.normact)
        mlp("dec/mlp", dec.mlp)
        dense("dec/vec/obs/pred", dec.vec_out["obs"])
    else:
        convs = [x for x in enc.cnn if type(x).__name__ == "Conv2d"]
        norms = [x for x in enc.cnn if type(x).__name__ == "ChannelNormAct"]
        for i, (c, n) in enumerate(zip(convs, norms)):
            conv(f"enc/cnn{i}", c)
            norm(f"enc/cnn{i}norm", n.normact)
        block("dec/sp0", dec.sp0)
        dense("dec/sp1", dec.sp1.linear)
        norm("dec/sp1norm", dec.sp1.normact)
        dense("dec/sp2", dec.sp2)
        norm("dec/spnorm", dec.spnorm.normact)
        ups = list(dec.cnn)
        n_up = len(ups) // 2
        for j in range(n_up):  # ours run from low to high resolution: conv{n_up-1} ... conv0
            i = n_up - 1 - j
            conv(f"dec/conv{i}", ups[2 * j])
            norm(f"dec/conv{i}norm", ups[2 * j + 1].normact)
        conv("dec/imgout", dec.imgout)
    for i in range(3):
        d = getattr(dyn, f"dynin{i}")
        dense(f"dyn/dynin{i}", d.linear)
        norm(f"dyn/dynin{i}norm", d.normact)
    for i, layer in enumerate(dyn.dynhid):
        block(f"dyn/dynhid{i}", layer["linear"])
        norm(f"dyn/dynhid{i}norm", layer["normact"])
    block("dyn/dyngru", dyn.dyngru)
    for i, layer in enumerate(dyn.obs):
        dense(f"dyn/obs{i}", layer.linear)
        norm(f"dyn/obs{i}norm", layer.normact)
    dense("dyn/obslogit", dyn.obslogit)
    for i, layer in enumerate(dyn.prior):
        dense(f"dyn/prior{i}", layer.linear)
        norm(f"dyn/prior{i}norm", layer.normact)
    dense("dyn/priorlogit", dyn.priorlogit)
    for name, head in (("rew", model.reward_head), ("val", model.value),
                       ("slowval", model.slow_value)):  # fmt: skip
        mlp(f"{name}/mlp", head.mlp)
        dense(f"{name}/head/logits", head.out)
    mlp("con/mlp", model.continue_head.mlp)
    dense("con/head/logit", model.continue_head.out)
    pol = model.policy
    mlp("pol/mlp", pol.mlp)
    if setting == "vector":
        dense("pol/head/action/mean", pol.mean)
        dense("pol/head/action/stddev", pol.stddev)
    else:
        dense("pol/head/action/logits", pol.logits)
    return m


def build_ours(setting: str):
    from worldflux import create_world_model

    if setting == "vector":
        return create_world_model(
            "dreamerv3:size1m",
            obs_shape=(OBS_DIM,),
            action_dim=ACT_DIM,
            action_spec={"kind": "continuous"},
        )
    # official categorical actor has no unimix (see docs/dreamerv3.md)
    model = create_world_model("dreamerv3:size1m", obs_shape=(3, 64, 64), action_dim=ACT_DIM)
    model.policy.unimix = 0.0
    return model


def load_official(model, setting: str, data) -> tuple[int, int, int]:
    """Copy the official weights into ``model``; returns (#tensors, #values) loaded."""
    import numpy as np
    import torch

    mapping = param_map(model, setting)
    official = {k[len("param/") :]: data[k] for k in data.files if k.startswith("param/")}
    # non-parameter state of the official model: normaliser statistics, slow-model counter
    extra = {k for k in official if not k.endswith(("/kernel", "/bias", "/scale"))}
    missing = sorted(set(official) - extra - set(mapping))
    unused = sorted(set(mapping) - set(official))
    if missing or unused:
        raise SystemExit(f"mapping mismatch: official only {missing}, ours only {unused}")
    ours = {id(p) for p in model.parameters()} | {id(p) for p in model.slow_value.parameters()}
    mapped = {id(t) for t, _ in mapping.values()}
    if ours - mapped:
        raise SystemExit(f"{len(ours - mapped)} of our parameters have no official counterpart")
    count = 0
    with torch.no_grad():
        for name, (tensor, layout) in mapping.items():
            value = to_ours(official[name], layout)
            value = torch.from_numpy(np.ascontiguousarray(value)).float()
            if tuple(value.shape) != tuple(tensor.shape):
                raise SystemExit(f"{name}: official {value.shape} vs ours {tuple(tensor.shape)}")
            tensor.copy_(value)
            count += value.numel()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return len(mapping), count, trainable


def to_ours(value, layout: str):
    """An official array in our layout: dense ``(in, out)`` -> ``(out, in)``, conv HWIO -> OIHW."""
    import numpy as np

    if layout == "dense":
        return value.T
    if layout == "conv":
        return np.transpose(value, (3, 2, 0, 1))
    return value


class Replay:
    """Stands in for ``rssm.sample_onehot``: returns the official samples in call order."""

    def __init__(self, samples):
        self.samples, self.i = samples, 0

    def __call__(self, logprobs, mode=False):
        value = self.samples[self.i].to(logprobs.dtype)
        self.i += 1
        assert value.shape == logprobs.shape, (value.shape, logprobs.shape)
        probs = logprobs.exp()
        return value + probs - probs.detach()


def compare(setting: str, path: str) -> list[tuple[str, float, float]]:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from worldflux.models.dreamerv3 import rssm as rssm_mod
    from worldflux.models.dreamerv3.behavior import imagination_losses, replay_value_loss
    from worldflux.models.dreamerv3.losses import features, world_model_losses
    from worldflux.nn.scale import PercentileScale

    data = np.load(path)
    o = {k[len("out/") :]: torch.from_numpy(data[k]) for k in data.files if k.startswith("out/")}
    model = build_ours(setting)
    n_tensors, n_loaded, n_trainable = load_official(model, setting, data)
    model.train()
    inp = make_inputs(setting)
    if setting == "vector":
        obs = torch.from_numpy(inp["obs"])
        act = torch.from_numpy(inp["act"])
        imgact = torch.from_numpy(inp["imgact"])
    else:
        obs = torch.from_numpy(inp["obs"]).permute(0, 1, 4, 2, 3).contiguous()  # NHWC -> NCHW
        act = F.one_hot(torch.from_numpy(inp["act"]).long(), ACT_DIM).float()
        imgact = F.one_hot(torch.from_numpy(inp["imgact"]).long(), ACT_DIM).float()
    first = torch.from_numpy(inp["first"])
    terminal = torch.from_numpy(inp["terminal"])
    last = torch.from_numpy(inp["last"])
    reward = torch.from_numpy(inp["reward"])
    rows = []

    def row(name, ours, theirs):
        ours, theirs = ours.detach().float(), theirs.float()
        assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
        diff = (ours - theirs).abs().max().item()
        rows.append((name, diff, theirs.abs().max().item()))

    original = rssm_mod.sample_onehot
    no_grad = torch.no_grad()
    try:
        with torch.enable_grad():
            # encoder
            embed = model.encoder({"obs": obs.flatten(0, 1)}).view(B, T, -1)
            row("encoder embedding", embed, o["tokens"])
            # posterior with the official samples (obs_step x T), then the world-model losses
            rssm_mod.sample_onehot = Replay([o["post_stoch"][:, i] for i in range(T)])
            state = model.dynamics.initial(B)
            losses, post, feat, _ = world_model_losses(
                model, {"obs": obs}, act, reward, first, terminal, state
            )
            row("obs_step: deter (GRU)", post["deter"], o["post_deter"])
            row("obs_step: posterior logits", post["logit"], o["post_logit"])
            row("img_step: prior logits", model.dynamics.prior_logit(post["deter"]),
                o["prior_logit"])  # fmt: skip
            row("features [deter, stoch]", feat, o["feat"])
            # imagination: img_step x H from every posterior state, fixed actions
            rssm_mod.sample_onehot = Replay([o["img_stoch"][:, i] for i in range(H)])
            start = {k: post[k].flatten(0, 1) for k in ("deter", "stoch")}
            with no_grad:  # imagined trajectories are detached (official: sg(imgfeat))
                img, _ = model.dynamics.imagine(start, imgact[:, :H], H)
            row("imagine: deter (GRU)", img["deter"], o["img_deter"])
            row("imagine: prior logits", img["logit"], o["img_logit"])
            # decoder
            recon = model.decoder(
                post["deter"].flatten(0, 1), post["stoch"].flatten(0, 1).flatten(1)
            )
            pred = recon["obs"].view(B, T, *recon["obs"].shape[1:])
            if setting == "image":
                pred = pred.permute(0, 1, 3, 4, 2)
            row("decoder output", pred, o["dec_pred"])
            # heads on the posterior features
            row("reward head: prediction", model.reward_head.pred(model.reward_head(feat)),
                o["rew_pred"])  # fmt: skip
            row("continue head: probability", model.continue_head.prob(model.continue_head(feat)),
                o["con_prob"])  # fmt: skip
            dist = model.policy(feat)
            if setting == "vector":
                row("policy: mean", dist.mean, o["pol_mean"])
                row("policy: std", dist.std, o["pol_std"])
                row("policy: log-prob of actions", dist.log_prob(act), o["pol_logp"])
            else:
                row("policy: log-probs", dist.logprobs,
                    torch.log_softmax(o["pol_logits"], -1))  # fmt: skip
                row("policy: log-prob of actions", dist.log_prob(act), o["pol_logp"])
                model.policy.unimix = 0.01  # our default: the known difference (docs)
                row("(known difference) policy log-probs with policy.unimix 0.01",
                    model.policy(feat).logprobs, torch.log_softmax(o["pol_logits"], -1))  # fmt: skip
                model.policy.unimix = 0.0
            row("policy: entropy", dist.entropy(), o["pol_ent"])
            row("value head: prediction", model.value.pred(model.value(feat)), o["val_pred"])
            row("slow value: prediction", model.slow_value.pred(model.slow_value(feat)),
                o["slowval_pred"])  # fmt: skip
            # world-model losses (B, T)
            for ours_key, key in (("rec_obs", "rec"), ("rew", "rew"), ("con", "con"),
                                  ("dyn", "dyn"), ("rep", "rep")):  # fmt: skip
                row(f"loss {key} (B, T)", losses[ours_key], o[f"loss_{key}"])
            # actor-critic losses on [start, imagined] features with fixed actions
            full = torch.cat(
                [
                    feat.detach().flatten(0, 1)[:, None],
                    features({k: img[k] for k in ("deter", "stoch")}),
                ],
                1,
            )
            with no_grad:
                rew_i = model.reward_head.pred(model.reward_head(full))
                con_i = model.continue_head.prob(model.continue_head(full))
                slow_i = model.slow_value.pred(model.slow_value(full))
            retnorm = PercentileScale(model.config.retnorm_rate, limit=model.config.retnorm_limit,
                                      low=model.config.retnorm_perclo,
                                      high=model.config.retnorm_perchi)  # fmt: skip
            cfg = model.config
            ilos, ret, _ = imagination_losses(
                imgact, rew_i, con_i, model.policy(full), model.value(full), slow_i, model.value,
                retnorm, True, disc=1.0 if cfg.contdisc else cfg.discount, lam=cfg.lam,
                actent=cfg.actent, slowreg=cfg.slowreg,
            )  # fmt: skip
            row("imagined lambda-returns", ret, o["imag_ret"])
            row("loss policy (N, H)", ilos["policy"], o["loss_policy"])
            row("loss value (N, H)", ilos["value"], o["loss_value"])
            with no_grad:
                rslow = model.slow_value.pred(model.slow_value(feat))
            repval = replay_value_loss(
                last, terminal, reward, ret[:, 0].view(B, T), model.value(feat), rslow,
                model.value, disc=cfg.discount, lam=cfg.lam, slowreg=cfg.slowreg,
            )  # fmt: skip
            row("loss repval (B, T-1)", repval, o["loss_repval"])
            sc = cfg.loss_scales
            terms = dict(losses, policy=ilos["policy"], value=ilos["value"], repval=repval)
            total = sum(
                v.mean() * sc["rec" if k.startswith("rec_") else k] for k, v in terms.items()
            )
            row("total loss", total, o["total"])
            total.backward()
        # gradients of the total loss, per part
        mapping = param_map(model, setting)
        parts: dict = {}
        for name, (tensor, layout) in mapping.items():
            if name.startswith("slowval/"):
                continue
            g = data[f"grad/{name}"]
            g = to_ours(g, layout)
            ours = tensor.grad if tensor.grad is not None else torch.zeros_like(tensor)
            diff = (ours - torch.from_numpy(np.ascontiguousarray(g))).abs().max().item()
            part = name.split("/")[0]
            d, m = parts.get(part, (0.0, 0.0))
            parts[part] = (max(d, diff), max(m, float(np.abs(g).max())))
        labels = {"enc": "encoder", "dyn": "RSSM", "dec": "decoder", "rew": "reward head",
                  "con": "continue head", "pol": "policy", "val": "value"}  # fmt: skip
        for part, (d, m) in parts.items():
            rows.append((f"gradient of total loss: {labels[part]}", d, m))
        # optimiser: the same official gradients through our LaProp for OPT_STEPS steps
        from worldflux.optim import LaProp

        cfg = model.config
        trained = {n: v for n, v in mapping.items() if n.split("/")[0] in TRAINED}
        before = {n: t.detach().clone() for n, (t, _) in trained.items()}
        opt = LaProp([t for t, _ in trained.values()], lr=cfg.lr, agc=cfg.agc, eps=cfg.opt_eps,
                     beta1=cfg.beta1, beta2=cfg.beta2, momentum=cfg.momentum, warmup=OPT_WARMUP)  # fmt: skip
        for name, (tensor, layout) in trained.items():
            tensor.grad = torch.from_numpy(
                np.ascontiguousarray(to_ours(data[f"grad/{name}"], layout))
            )
        for _ in range(OPT_STEPS):
            opt.step()
        d = m = 0.0
        for name, (tensor, layout) in trained.items():
            theirs = torch.from_numpy(np.ascontiguousarray(to_ours(data[f"delta/{name}"], layout)))
            d = max(d, (tensor.detach() - before[name] - theirs).abs().max().item())
            m = max(m, theirs.abs().max().item())
        rows.append((f"optimiser: parameter change after {OPT_STEPS} steps", d, m))
    finally:
        rssm_mod.sample_onehot = original
    print(
        f"[compare] {setting}: loaded {n_tensors} official tensors ({n_loaded:,} values; our "
        f"trainable parameters {n_trainable:,} + slow critic)"
    )
    return rows


def print_table(results: dict) -> None:
    names: list = []
    for rows in results.values():
        prev = -1
        for r in rows:
            if r[0] in names:
                prev = names.index(r[0])
            else:
                prev += 1
                names.insert(prev, r[0])
    head = (
        "| compared | "
        + " | ".join(f"{s}: max abs diff | {s}: max abs official" for s in results)
        + " |"
    )
    print(head)
    print("|---|" + "---|---|" * len(results))
    for name in names:
        cells = []
        for rows in results.values():
            hit = [r for r in rows if r[0] == name]
            cells += [f"{hit[0][1]:.1e}", f"{hit[0][2]:.3g}"] if hit else ["", ""]
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("step", choices=("dump", "compare", "all"))
    p.add_argument("--official", default="/tmp/dreamerv3_official", help="checkout @ e3f0224")
    p.add_argument("--jax-python", default="/tmp/jaxenv/bin/python")
    p.add_argument("--dir", default="/tmp/dreamerv3_compare", help="where the .npz files go")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    npz = {s: os.path.join(a.dir, f"official_{s}.npz") for s in a.settings}
    if a.step == "dump":
        for s in a.settings:
            dump(s, a.official, npz[s])
        return
    if a.step == "all":
        env = dict(os.environ, PYTHONPATH="", OMP_NUM_THREADS="1",
                   XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")  # fmt: skip
        cmd = [a.jax_python, __file__, "dump", "--official", a.official, "--dir", a.dir,
               "--settings", *a.settings]  # fmt: skip
        subprocess.run(cmd, check=True, env=env)
    import torch

    torch.set_num_threads(1)
    print_table({s: compare(s, npz[s]) for s in a.settings})


if __name__ == "__main__":
    main()
