"""World-model half of ``scripts/compare_ssm_official.py`` (R2I vs chandar-lab/Recall2Imagine).

``dump_wm`` (JAX environment) builds the official ``WorldModel`` (``agent.py``) with the
``defaults`` + ``popgym`` config shrunk to ``ssm:ci``'s widths (KL scales 0.8 / 0.2 as mmaze),
perturbs every parameter and records ``WorldModel.loss`` on a fixed batch (4-d vector
observations, 4 one-hot actions, a terminal step): every loss term, the posterior and prior
log-probabilities, ``deter``, the S5 states, the posterior samples and the gradient of the loss for
every parameter. ``compare_wm`` (worldflux) loads those weights into ``ssm:ci`` through
:func:`our_name`, replays the official posterior samples in place of ours (straight-through as the
reference) and reports the largest differences. The package is imported without its
``__init__`` (which builds the trainer); only ``embodied``, ``agent`` and their imports load.
"""

from __future__ import annotations

import os
import sys

import numpy as np

WM_B, WM_T = 3, 12
#: The official config (defaults + popgym) shrunk to ``ssm:ci``'s widths, mmaze KL scales.
WM_CONFIG = {"rssm.deter": 32, "rssm.units": 16, "rssm.hidden": 16, "rssm.stoch": 4,
             "rssm.classes": 4, "ssm.n_layers": 2, "encoder.mlp_units": 16,
             "decoder.mlp_units": 16, "reward_head.units": 16, "cont_head.units": 16,
             "reward_head.layers": 1, "cont_head.layers": 1, "loss_scales.dyn": 0.8,
             "loss_scales.rep": 0.2}  # fmt: skip
WM_TERMS = {
    "dyn": "dyn",
    "rep": "rep",
    "observation": "rec_obs",
    "reward": "reward",
    "cont": "cont",
}


def wm_inputs(seed: int = 0) -> dict:
    """A batch in the official layout (``action[t]`` is taken after ``observation[t]``)."""
    rng = np.random.default_rng(seed)
    eye = np.eye(4, dtype=np.float32)
    terminal = np.zeros((WM_B, WM_T), bool)
    terminal[1, WM_T - 1] = True
    first = np.zeros((WM_B, WM_T), bool)
    first[:, 0] = True
    return {"observation": (2 * rng.normal(size=(WM_B, WM_T, 4))).astype(np.float32),
            "reward": rng.normal(size=(WM_B, WM_T)).astype(np.float32), "is_first": first,
            "is_terminal": terminal, "cont": 1.0 - terminal.astype(np.float32),
            "action": eye[rng.integers(0, 4, (WM_B, WM_T))]}  # fmt: skip


def load_official(official: str) -> tuple:
    """``(embodied, agent, ninjax)`` of the official package, imported without its ``__init__``
    (which builds the trainer)."""
    import types

    root = os.path.join(official, "recall2imagine")
    sys.path.insert(0, root)
    sys.modules["recall2imagine"] = pkg = types.ModuleType("recall2imagine")
    pkg.__path__ = [root]
    import embodied
    from recall2imagine import agent as agentlib
    from recall2imagine import ninjax as nj

    return embodied, agentlib, nj


def official_world_model(official: str, overrides: dict, name: str = "wm") -> tuple:
    """``(WorldModel, ninjax)`` for 4-d vector observations and 4 actions (defaults + popgym)."""
    embodied, agentlib, nj = load_official(official)
    configs = agentlib.Agent.configs
    cfg = embodied.Config(configs["defaults"]).update(configs["popgym"]).update(overrides)
    space = embodied.Space
    obs_space = {"observation": space(np.float32, (4,)), "reward": space(np.float32),
                 "is_first": space(bool), "is_last": space(bool), "is_terminal": space(bool)}  # fmt: skip
    act = {"action": space(np.float32, (4,), 0, 1)}
    return agentlib.WorldModel(obs_space, act, cfg, name=name), nj


def dump_wm(official: str, out: str) -> None:
    """The official ``WorldModel.loss`` at a tiny config: losses, latents and gradients."""
    import jax

    wm, nj = official_world_model(official, WM_CONFIG)
    data = wm_inputs()
    fn = nj.pure(lambda d: wm.loss(d, wm.initial(WM_B)))
    _, params = fn({}, jax.random.PRNGKey(0), data)
    leaves, tree = jax.tree_util.tree_flatten_with_path(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    leaves = [v + 0.1 * jax.random.normal(k, v.shape) for (_, v), k in zip(leaves, keys)]
    names = ["/".join(str(getattr(q, "key", q)) for q in path) for path, _ in
             jax.tree_util.tree_flatten_with_path(params)[0]]  # fmt: skip
    params = jax.tree_util.tree_unflatten(tree, leaves)

    def loss(params):
        (total, (_, outs, _)), _ = fn(params, jax.random.PRNGKey(2), data, create=False)
        return total, outs

    (total, outs), grads = jax.value_and_grad(loss, has_aux=True)(params)
    res = {f"param/{n}": np.asarray(v) for n, v in zip(names, leaves)}
    res.update(
        {f"grad/{n}": np.asarray(g) for n, g in zip(names, jax.tree_util.tree_leaves(grads))}
    )
    res.update({f"loss/{k}": np.asarray(outs[f"{k}_loss"]) for k in WM_TERMS})
    res.update({f"post/{k}": np.asarray(v) for k, v in outs["post"].items()})
    res["prior/logit"], res["total"] = np.asarray(outs["prior"]["logit"]), np.asarray(total)
    np.savez(out, **res)
    print(f"official world model: {len(names)} parameter arrays, loss {float(total):.4f}")


def our_name(name: str) -> str:
    """Official world-model parameter name -> ours (``ssm:ci`` layout)."""
    import re

    name = name.removeprefix("wm/").replace("/state/params/", "/")
    for old, new in (("enc/mlp/h", "encoder/mlp/"), ("dec/mlp/h", "decoder/mlp/"),
                     ("dec/mlp/dist_observation/out", "decoder/heads/obs"), ("rssm/", "dynamics/"),
                     ("rew/h", "reward_head/net/"), ("rew/dist_out/out", "reward_head/out"),
                     ("cont/h", "continue_head/net/"), ("cont/dist_out/out", "continue_head/out"),
                     ("mimo_ssm/layers_", "core/layers/"), ("/seq/", "/"), ("norm/scale", "norm/weight")):  # fmt: skip
        name = name.replace(old, new)
    if not re.search(r"core/layers/\d+/(out|out2)/", name):  # Dense layers wrap an nn.Linear
        name = re.sub(r"(?<!norm)/(kernel|bias)$", r"/linear/\1", name)
    return name.replace("/kernel", "/weight").replace("/", ".")


def compare_wm(path: str) -> list[tuple[str, float, float]]:
    """Load the official weights into ``ssm:ci`` (4-d vector, 4 actions), replay its samples."""
    import torch

    import worldflux.models.ssm.dynamics as dyn
    from worldflux import create_world_model

    data = np.load(path)
    model = create_world_model("ssm:ci", obs_shape=[4], action_dim=4)
    ours = dict(model.named_parameters())
    mapping = {n[len("param/") :]: our_name(n[len("param/") :]) for n in data.files if n.startswith("param/")}  # fmt: skip
    wm_names = {n for n in ours if not n.startswith(("policy.", "value.", "slow"))}
    if set(mapping.values()) != wm_names:
        raise SystemExit(f"names differ: {sorted(set(mapping.values()) ^ wm_names)}")
    with torch.no_grad():
        for name, mine in mapping.items():
            value = torch.from_numpy(data[f"param/{name}"])
            ours[mine].copy_(value.T if name.endswith("kernel") else value)
    x = wm_inputs()
    stoch = torch.from_numpy(np.round(data["post/stoch"]))
    original = dyn.sample_onehot
    dyn.sample_onehot = lambda lp, mode=False: (  # the official posterior samples, straight-through
        original(lp, mode) if mode else stoch + lp.exp() - lp.exp().detach()
    )
    prev = np.concatenate([np.zeros_like(x["action"][:, :1]), x["action"][:, :-1]], 1)
    batch = {"obs": torch.from_numpy(x["observation"]), "action": torch.from_numpy(prev),
             "reward": torch.from_numpy(x["reward"]), "first": torch.from_numpy(x["is_first"]),
             "terminal": torch.from_numpy(x["is_terminal"])}  # fmt: skip
    try:
        out = model.phase_loss("model", batch, {})
        out.total.backward()
        post = model.dynamics.observe(
            model.encode(batch["obs"]), batch["action"], batch["first"],
            model.dynamics.initial(WM_B))[0]  # fmt: skip
    finally:
        dyn.sample_onehot = original
    scales = {"dyn": 0.8, "rep": 0.2, "observation": 1.0, "reward": 1.0, "cont": 1.0}
    rows = [
        (
            "total world-model loss",
            abs(out.total.item() - float(data["total"])),
            float(abs(data["total"])),
        )
    ]
    for k, mine in WM_TERMS.items():
        ref = scales[k] * data[f"loss/{k}"].mean()
        rows.append((f"loss {k} (scaled mean)", abs(out.components[mine].item() - ref), abs(ref)))
    lp = lambda t: model.dynamics.logprobs(t).detach().numpy()  # noqa: E731
    for name, mine, ref in (("deter", post["deter"].detach().numpy(), data["post/deter"]),
                            ("S5 states", post["hidden"].detach().numpy(),
                             np.stack([data["post/hidden"].real, data["post/hidden"].imag], -1)),
                            ("posterior log-probs", lp(post["logit"]), data["post/logit"]),
                            ("prior log-probs", lp(post["prior_logit"]), data["prior/logit"])):  # fmt: skip
        rows.append((name, float(np.abs(mine - ref).max()), float(np.abs(ref).max())))
    for part in ("encoder", "dynamics.core", "dynamics", "decoder", "reward_head", "continue_head"):
        names = [n for n, m in mapping.items() if m.startswith(part + ".") and
                 (part == "dynamics.core" or not m.startswith("dynamics.core."))]  # fmt: skip
        diff = max(
            float(np.abs(_grad(ours[mapping[n]], n) - data[f"grad/{n}"]).max()) for n in names
        )
        scale = max(float(np.abs(data[f"grad/{n}"]).max()) for n in names)
        label = (
            "S5 stack"
            if part == "dynamics.core"
            else part + (" (other)" if part == "dynamics" else "")
        )
        rows.append((f"grads {label} ({len(names)} arrays)", diff, scale))
    return rows


def _grad(tensor, name: str) -> np.ndarray:
    if tensor.grad is None:  # initial_deter: the prior mode passes no gradient (nor officially)
        return np.zeros(tuple(tensor.shape), np.float32)
    return (tensor.grad.T if name.endswith("kernel") else tensor.grad).numpy()
