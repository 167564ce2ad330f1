"""Loading the released IRIS agents (``eloialonso/iris`` on the Hugging Face Hub,
``pretrained_models/<Game>.pt``) and any state dict in the reference's layout.

Reference: eloialonso/iris @ 24326aa, ``src/agent.py`` (``Agent.load``: one state dict whose keys
start with ``tokenizer.``, ``world_model.`` or ``actor_critic.``; ``src/trainer.py`` saves it with
``torch.save(agent.state_dict(), ...)``). The file is read with ``torch.load(weights_only=True)``
(:func:`worldflux.weights.read_state_dict`); nothing in it runs. The reference's buffers that we
compute instead (attention masks, the heads' index tables) and its LPIPS copy are skipped; every
other key must map onto one of ours with the same shape, else :class:`ModelFileError` names the
keys.

Two ways in: ``create_world_model("token:base", weights=path)`` (also ``model.weights=`` and
``python -m worldflux.eval checkpoint=path model=token/base``), through :class:`ReleasedWeights`'s
hooks, which read the action count from the file; or ``Token.load_official(path, parts)`` for some
parts only (the reference's ``load_tokenizer`` etc. switches).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from worldflux.errors import ModelFileError

#: Reference key patterns -> ours (applied after the part prefix), in order; ``None`` skips.
_RULES: tuple[tuple[str, str | None], ...] = (
    (r"^tokenizer\.lpips\..*", None),
    (r"^world_model\.transformer\.blocks\.(\d+)\.attn\.mask$", None),
    (r"^world_model\.head_\w+\.indices$", None),
    (r"^world_model\.transformer\.blocks\.", "world_model.blocks."),
    (r"^world_model\.transformer\.ln_f\.", "world_model.ln_f."),
    (r"^world_model\.embedder\.embedding_tables\.0\.", "world_model.embed_act."),
    (r"^world_model\.embedder\.embedding_tables\.1\.", "world_model.embed_obs."),
    (r"^world_model\.head_observations\.head_module\.", "world_model.head_obs."),
    (r"^world_model\.head_rewards\.head_module\.", "world_model.head_reward."),
    (r"^world_model\.head_ends\.head_module\.", "world_model.head_end."),
)
_SHOWN = 5
#: reference keys that give the action count (the action embedding's rows, the policy's outputs)
ACTION_KEYS = ("world_model.embedder.embedding_tables.0.weight", "actor_critic.actor_linear.weight")


def _map_key(key: str) -> str | None:
    for pattern, repl in _RULES:
        if re.match(pattern, key):
            return None if repl is None else re.sub(pattern, repl, key)
    m = re.match(r"^actor_critic\.conv(\d+)\.(.*)$", key)
    if m:
        return f"actor_critic.convs.{int(m.group(1)) - 1}.{m.group(2)}"
    return key


def official_to_ours(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a reference ``Agent`` state dict to :class:`~worldflux.models.token.module.Token`'s."""
    out = {}
    for key, value in state.items():
        new = _map_key(key)
        if new is not None:
            out[new] = value
    return out


def is_official(state: Mapping[str, Any]) -> bool:
    """Whether ``state`` is in the reference's layout (its GPT lives under ``transformer.``)."""
    return any(k.startswith(("world_model.transformer.", "actor_critic.conv1.")) for k in state)


def official_overrides(state: Mapping[str, Any]) -> dict[str, Any]:
    """The action count stored in a reference state dict as a config override (``{}`` for
    other layouts). Raises ValueError when the two places that store it disagree."""
    if not is_official(state):
        return {}
    counts = {k: int(state[k].shape[0]) for k in ACTION_KEYS if isinstance(state.get(k), Tensor)}
    if len(set(counts.values())) > 1:
        raise ValueError(f"the action counts stored in the file disagree: {counts}")
    return {"action_dim": next(iter(counts.values()))} if counts else {}


class ReleasedWeights:
    """The :mod:`worldflux.weights` hooks of :class:`~worldflux.models.token.module.Token`."""

    @classmethod
    def reference_overrides(cls, state: Mapping[str, Tensor]) -> dict[str, Any]:
        """The action count stored in a released IRIS agent (see :func:`official_overrides`)."""
        return official_overrides(state)

    @classmethod
    def from_reference_state(cls, state: Mapping[str, Tensor], config: Any) -> dict[str, Tensor]:
        """Our state dict for a reference ``Agent`` state dict (see :func:`official_to_ours`)."""
        if not is_official(state):
            raise KeyError(
                "neither worldflux's token keys nor eloialonso/iris's Agent keys "
                f"(first key: {next(iter(state), None)!r})"
            )
        return official_to_ours(state)


def ours_to_official(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The inverse renaming (for writing files in the reference's layout, e.g. in tests)."""
    out = {}
    for key, value in state.items():
        new = key
        m = re.match(r"^actor_critic\.convs\.(\d+)\.(.*)$", key)
        if m:
            new = f"actor_critic.conv{int(m.group(1)) + 1}.{m.group(2)}"
        for ours, theirs in (
            ("world_model.blocks.", "world_model.transformer.blocks."),
            ("world_model.ln_f.", "world_model.transformer.ln_f."),
            ("world_model.embed_act.", "world_model.embedder.embedding_tables.0."),
            ("world_model.embed_obs.", "world_model.embedder.embedding_tables.1."),
            ("world_model.head_obs.", "world_model.head_observations.head_module."),
            ("world_model.head_reward.", "world_model.head_rewards.head_module."),
            ("world_model.head_end.", "world_model.head_ends.head_module."),
        ):
            if key.startswith(ours):
                new = theirs + key[len(ours) :]
        out[new] = value
    return out


def read_official(path: str | Path) -> dict[str, Tensor]:
    """Read a reference checkpoint (weights-only, or safetensors) as a flat state dict."""
    from worldflux.weights import read_state_dict

    return read_state_dict(path)


def load_official(
    model: torch.nn.Module, path: str | Path, parts: tuple[str, ...] | None = None
) -> None:
    """Load a reference checkpoint into ``model`` (a ``Token``), all parts or only ``parts``.

    Raises:
        ModelFileError: keys of ours missing from the file, keys of the file that map to nothing,
            or tensors whose shapes differ (the preset does not match the checkpoint).
    """
    p = Path(path)
    mapped = official_to_ours(read_official(p))
    own = model.state_dict()
    parts = parts or ("tokenizer", "world_model", "actor_critic")
    want = {k for k in own if k.split(".", 1)[0] in parts}
    given = {k for k in mapped if k.split(".", 1)[0] in parts}
    problems = []
    if missing := sorted(want - given):
        problems.append(f"{len(missing)} missing keys, e.g. {missing[:_SHOWN]}")
    if unexpected := sorted(given - want):
        problems.append(f"{len(unexpected)} unexpected keys, e.g. {unexpected[:_SHOWN]}")
    bad = [
        f"{k}: file {tuple(mapped[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(want & given)
        if mapped[k].shape != own[k].shape
    ]
    if bad:
        problems.append(f"{len(bad)} shape mismatches, e.g. {bad[:_SHOWN]}")
    if problems:
        raise ModelFileError(p, "does not fit this IRIS preset: " + "; ".join(problems))
    with torch.no_grad():
        for k in want:
            own[k].copy_(mapped[k].to(own[k].dtype))
