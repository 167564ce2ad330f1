"""Released TD-MPC2 agents in our TD-MPC2: the key and layout mapping of the official state dict.

The official agents (nicklashansen/tdmpc2 @ e9f5932, ``TDMPC2.save``: ``{"model":
WorldModel.state_dict()}``; the released single-task 1M-317M DMControl/Meta-World agents and the
mt30/mt80 multitask models) come in two layouts, both read here:

* the current one (``torch.compile``-friendly): the Q ensemble as TensorDict parameters
  ``_Qs.params.{layer}.{weight,bias,ln.weight,ln.bias}`` stacked over the members, with a detached
  alias ``_detach_Qs_params.*`` and the EMA targets ``_target_Qs_params.*``;
* the older one (most released files): ``_Qs.params.{n}`` / ``_target_Qs.params.{n}`` with
  ``n = 4 * layer + [weight, bias, ln.weight, ln.bias]`` (the official ``api_model_conversion``).

Plain MLPs keep their layer indices: ``_encoder.state.{i}`` -> ``encoder.net.{i}``, ``_dynamics``,
``_reward``, ``_termination``, ``_pi`` -> ``dynamics``, ``reward``, ``termination``, ``policy``;
the pixel encoder ``_encoder.rgb.{i}`` (after its two parameter-free preprocessing modules) ->
``encoder.net.{i - 2}``; ``_task_emb`` -> ``task_emb``. Q layers ``_Qs.params.{l}.{weight,bias}``
-> ``q_ensemble.layers.{l}.*`` and their LayerNorms -> ``q_ensemble.ln_{weight,bias}[l]``.
The spaces stored in the file (observation and action sizes, task count and embedding width,
per-task action sizes, whether a termination head exists) become config overrides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

#: official prefix -> ours, for the plain MLPs (layer indices and ``.ln`` names are shared).
MLP_PREFIXES = {
    "_encoder.state.": "encoder.net.",
    "_dynamics.": "dynamics.net.",
    "_reward.": "reward.net.",
    "_termination.": "termination.net.",
    "_pi.": "policy.net.",
    "_task_emb.": "task_emb.",
}
#: official ensemble parameters -> ours (current layout, then the older one).
ENSEMBLES = {"_Qs.params.": "q_ensemble", "_target_Qs_params.": "target_q"}
OLD_ENSEMBLES = {"_Qs.params.": "q_ensemble", "_target_Qs.params.": "target_q"}
#: the older layout's per-layer order of the stacked parameters
OLD_ORDER = ("weight", "bias", "ln.weight", "ln.bias")
#: official keys with no counterpart: vmap placeholders, the detached alias of ``_Qs.params``,
#: TensorDict metadata and buffers that ours builds from its config.
SKIPPED = (
    "_Qs.module.",
    "_detach_Qs.",
    "_target_Qs.module.",
    "_detach_Qs_params.",
    "log_std_min",
    "log_std_dif",
    "_action_masks",
)
#: the pixel encoder's first parameterised module (after ShiftAug and PixelPreprocess)
RGB_OFFSET = 2


def is_old_layout(state: Mapping[str, Any]) -> bool:
    """Whether ``state`` uses the older flat Q-parameter layout."""
    return any(k.startswith("_Qs.params.") and k[len("_Qs.params.") :].isdigit() for k in state)


def _ensemble_key(rest: str, old: bool) -> tuple[str, str]:
    """``(layer, name)`` of a Q-ensemble key after its prefix."""
    if old:
        n = int(rest)
        return str(n // 4), OLD_ORDER[n % 4]
    layer, name = rest.split(".", 1)
    return layer, name


def official_to_ours(official: Mapping[str, Any]) -> dict[str, Tensor]:
    """Our state-dict entries for an official TD-MPC2 state dict (either layout).

    Raises:
        KeyError: a key with no counterpart in ours.
    """
    old = is_old_layout(official)
    ensembles = OLD_ENSEMBLES if old else ENSEMBLES
    out: dict[str, Tensor] = {}
    ln: dict[str, dict[int, Tensor]] = {}
    for key, value in official.items():
        if not isinstance(value, Tensor) or key.startswith(SKIPPED) or ".__" in key:
            continue
        if key.startswith("_encoder.rgb."):
            index, rest = key[len("_encoder.rgb.") :].split(".", 1)
            out[f"encoder.net.{int(index) - RGB_OFFSET}.{rest}"] = value
            continue
        for src, dst in MLP_PREFIXES.items():
            if key.startswith(src):
                out[dst + key[len(src) :]] = value
                break
        else:
            for src, dst in ensembles.items():
                if key.startswith(src):
                    layer, name = _ensemble_key(key[len(src) :], old)
                    if name.startswith("ln."):
                        ln.setdefault(f"{dst}.ln_{name[3:]}", {})[int(layer)] = value
                    else:
                        out[f"{dst}.layers.{layer}.{name}"] = value
                    break
            else:
                raise KeyError(f"no mapping for official key {key!r}")
    for name, layers in ln.items():
        out[name] = torch.stack([layers[i] for i in sorted(layers)])
    return out


def with_targets(ours: dict[str, Tensor]) -> dict[str, Tensor]:
    """``ours`` with target Q-functions equal to the Qs where the file holds none."""
    if not any(k.startswith("target_q.") for k in ours):
        for key in [k for k in ours if k.startswith("q_ensemble.")]:
            ours["target_q." + key[len("q_ensemble.") :]] = ours[key].clone()
    return ours


def _last_layer(state: Mapping[str, Any], prefix: str) -> Tensor:
    indices = [
        int(k[len(prefix) :].split(".")[0])
        for k in state
        if k.startswith(prefix) and k.endswith(".weight") and ".ln." not in k
    ]
    if not indices:
        raise KeyError(f"no {prefix}* weights")
    return state[f"{prefix}{max(indices)}.weight"]


def official_overrides(state: Mapping[str, Any]) -> dict[str, Any]:
    """Config overrides for the spaces stored in an official state dict (``{}`` for others)."""
    if not any(k.startswith("_pi.") for k in state):
        return {}
    out: dict[str, Any] = {}
    task_dim = 0
    if "_task_emb.weight" in state:
        num_tasks, task_dim = state["_task_emb.weight"].shape
        out.update(num_tasks=int(num_tasks), task_dim=int(task_dim))
        masks = state.get("_action_masks")
        if isinstance(masks, Tensor) and masks.ndim == 2:
            out["task_action_dims"] = [int(n) for n in masks.sum(1).round().tolist()]
    if "_encoder.state.0.weight" in state:
        out["obs_shape"] = [int(state["_encoder.state.0.weight"].shape[1]) - int(task_dim)]
    elif f"_encoder.rgb.{RGB_OFFSET}.weight" in state:
        channels = int(state[f"_encoder.rgb.{RGB_OFFSET}.weight"].shape[1])
        out["obs_shape"] = [channels, 64, 64]
    out["action_dim"] = int(_last_layer(state, "_pi.").shape[0]) // 2
    out["episodic"] = any(k.startswith("_termination.") for k in state)
    return out
