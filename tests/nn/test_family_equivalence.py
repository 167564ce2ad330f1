"""Pinned numbers of DreamerV3 and TD-MPC2, recorded before their blocks moved to ``worldflux.nn``.

Each case builds a preset with a fixed seed and records a checksum of every state-dict entry
(names, shapes and values), the loss terms on a fixed batch and a checksum of the gradients. A
refactor of the shared blocks must leave all of them unchanged: same parameter names (checkpoints
and the official comparison scripts map them by name), same initialisation draws, same outputs.
Run ``python -m tests.nn.test_family_equivalence`` to print the values of the current code.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pytest
import torch

from worldflux import get_config
from worldflux.factory import build

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "dreamer_ci_image": ("dreamer:ci", {}),
    "dreamerv3_size1m_vector": (
        "dreamerv3:size1m",
        {"obs_shape": [24], "action_dim": 6, "action_kind": "continuous"},
    ),
    "tdmpc2_ci": ("tdmpc2:ci", {}),
    "tdmpc2_ci_image": ("tdmpc2:ci", {"obs_shape": [3, 64, 64], "latent_dim": 512}),
    "tdmpc2_5m": ("tdmpc2:5m", {}),
}


def _batch(config: Any, b: int = 2, t: int = 6) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(123)
    obs = {}
    for name, spec in config.modalities().items():
        shape = (b, t, *spec["shape"])
        if spec["kind"] == "image":
            obs[name] = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
        else:
            obs[name] = torch.randn(shape, generator=gen)
    if config.action_kind == "discrete":
        index = torch.randint(0, config.action_dim, (b, t), generator=gen)
        action = torch.nn.functional.one_hot(index, config.action_dim).float()
    else:
        action = torch.rand(b, t, config.action_dim, generator=gen) * 2 - 1
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    return {
        "obs": obs if len(obs) > 1 else next(iter(obs.values())),
        "action": action,
        "reward": torch.randn(b, t, generator=gen),
        "first": first,
        "terminal": torch.zeros(b, t, dtype=torch.bool),
    }


def _checksum(tensors: dict[str, torch.Tensor]) -> float:
    """A position-weighted sum over all entries, so a permutation or a renamed shape changes it."""
    total = 0.0
    for i, name in enumerate(sorted(tensors)):
        x = tensors[name].detach().double().flatten()
        w = torch.linspace(1.0, 2.0, x.numel(), dtype=torch.float64) if x.numel() > 1 else 1.0
        total += (i + 1) * float((x * w).sum())
    return total


def fingerprint(model_id: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Names digest, state checksum, loss terms and gradient checksum of one seeded build."""
    config = get_config(model_id, **overrides)
    torch.manual_seed(0)
    model = build(config, device="cpu")
    state = model.state_dict()
    names = ";".join(f"{k}:{tuple(v.shape)}" for k, v in state.items())
    batch = _batch(config)
    torch.manual_seed(1)
    out = model.loss(batch)
    out.total.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return {
        "names": hashlib.sha256(names.encode()).hexdigest()[:16],
        "state": _checksum(dict(state)),
        "total": float(out.total.detach()),
        "components": {k: float(v.detach().mean()) for k, v in sorted(out.components.items())},
        "grads": _checksum(grads),
    }


PINNED: dict[str, dict[str, Any]] = {
    "dreamer_ci_image": {
        "names": "b4818ba04c8eb24e",
        "state": 56788.94072132943,
        "total": 1247.847412109375,
        "components": {
            "con": 0.8372463583946228,
            "dyn": 1.0,
            "policy": -2.8280861442908645e-05,
            "rec_obs": 1236.4610595703125,
            "rep": 0.10000000149011612,
            "repval": 3.324758291244507,
            "rew": 5.541263580322266,
            "value": 0.5830878019332886,
        },
        "grads": -282403.49563453574,
    },
    "dreamerv3_size1m_vector": {
        "names": "9d5951b360635abc",
        "state": 121669.889082868,
        "total": 35.7580680847168,
        "components": {
            "con": 0.9645804762840271,
            "dyn": 6.088426113128662,
            "policy": -0.0001120201704907231,
            "rec_obs": 18.701976776123047,
            "rep": 0.6088426113128662,
            "repval": 3.324758291244507,
            "rew": 5.541263580322266,
            "value": 0.5283330082893372,
        },
        "grads": -253684.3551982893,
    },
    "tdmpc2_5m": {
        "names": "e4727bf30bb444be",
        "state": 934860.7821809987,
        "total": 0.857903242111206,
        "components": {
            "consistency": 0.31947243213653564,
            "reward": 0.2692153751850128,
            "termination": 0.0,
            "value": 0.2692154347896576,
        },
        "grads": 22.767767933218764,
    },
    "tdmpc2_ci": {
        "names": "2d3aa77d42954f09",
        "state": 38541.01647989503,
        "total": 0.8605626821517944,
        "components": {
            "consistency": 0.3221319317817688,
            "reward": 0.2692153751850128,
            "termination": 0.0,
            "value": 0.2692153751850128,
        },
        "grads": -6.008681950864761,
    },
    "tdmpc2_ci_image": {
        "names": "9395d55fdacf204f",
        "state": 46251.0836289158,
        "total": 0.6893372535705566,
        "components": {
            "consistency": 0.15090647339820862,
            "reward": 0.2692153751850128,
            "termination": 0.0,
            "value": 0.2692153751850128,
        },
        "grads": 11.766175541221235,
    },
}


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)


@pytest.mark.parametrize("case", sorted(CASES))
def test_numbers_unchanged(case: str) -> None:
    got, want = fingerprint(*CASES[case]), PINNED[case]
    assert got["names"] == want["names"], "state_dict names or shapes changed"
    assert _close(got["state"], want["state"]), (got["state"], want["state"])
    assert _close(got["total"], want["total"]), (got["total"], want["total"])
    assert got["components"].keys() == want["components"].keys()
    for key, value in want["components"].items():
        assert _close(got["components"][key], value), (key, got["components"][key], value)
    assert _close(got["grads"], want["grads"]), (got["grads"], want["grads"])


if __name__ == "__main__":
    for name in sorted(CASES):
        print(f"    {name!r}: {fingerprint(*CASES[name])!r},")
