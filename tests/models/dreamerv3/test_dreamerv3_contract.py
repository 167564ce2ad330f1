"""The WorldModel contract of DreamerV3: states, acting, imagination and input errors."""

from __future__ import annotations

import pytest
import torch

from tests.models.dreamerv3.conftest import MULTIMODAL, VECTOR, make_batch
from worldflux.errors import ShapeError
from worldflux.models.dreamerv3.losses import features


def test_contract_shapes(build) -> None:
    model = build()
    c = model.config
    batch = make_batch(c, b=2, t=5)
    state = model.initial_state(2)
    assert state["deter"].shape == (2, c.deter_dim)
    assert state["stoch"].shape == (2, c.stoch_dim, c.classes)
    assert state["action"].shape == (2, c.action_dim)
    assert model.encode(batch["obs"]).shape == (2, 5, model.encoder.out_dim)
    assert model.encode(batch["obs"][:, 0]).shape == (2, model.encoder.out_dim)
    states, last = model.observe(batch["obs"], batch["action"], batch["first"])
    assert states["deter"].shape == (2, 5, c.deter_dim)
    assert states["logit"].shape == (2, 5, c.stoch_dim, c.classes)
    nxt = model.transition(last, batch["action"][:, 1])
    assert nxt["deter"].shape == (2, c.deter_dim)
    imagined = model.rollout(last, batch["action"][:, 1:4])
    assert imagined["stoch"].shape == (2, 3, c.stoch_dim, c.classes)
    decoded = model.decode(imagined)
    assert decoded["obs"].shape == (2, 3, 3, 64, 64)
    assert decoded["reward"].shape == decoded["continue"].shape == (2, 3)
    assert decoded["obs"].min() >= 0.0 and decoded["obs"].max() <= 1.0


@pytest.mark.parametrize("overrides", [{}, VECTOR, MULTIMODAL], ids=["image", "vector", "multi"])
def test_act_returns_valid_actions_and_state(build, overrides) -> None:
    torch.manual_seed(0)
    model = build(**overrides)
    c = model.config
    obs = make_batch(c, b=3, t=2)["obs"]
    step = {k: v[:, 0] for k, v in obs.items()} if isinstance(obs, dict) else obs[:, 0]
    action, state = model.act(step)
    assert action.shape == (3, c.action_dim)
    if c.action_kind == "discrete":
        assert torch.all(action.sum(-1) == 1) and set(action.unique().tolist()) <= {0.0, 1.0}
    else:
        assert action.abs().max() <= 1.0
    assert torch.equal(state["action"], action)
    mode, nxt = model.act(step, state, eval_mode=True)
    with torch.no_grad():
        expected = model.policy(features(nxt)).mode().clamp(-1, 1)
    assert torch.equal(mode, expected)


def test_first_resets_the_agent_state(build) -> None:
    model = build()
    obs = make_batch(model.config, b=2, t=1)["obs"][:, 0]
    _, state = model.act(obs)
    state = {k: v + 5.0 for k, v in state.items()}
    torch.manual_seed(1)
    _, fresh = model.act(obs, None)
    torch.manual_seed(1)
    _, reset = model.act(obs, state, first=torch.tensor([True, True]))
    assert torch.allclose(fresh["deter"], reset["deter"])


def test_bad_observations_are_named(build) -> None:
    model = build()
    with pytest.raises(ShapeError, match=r"\(B, 3, 64, 64\)"):
        model.act(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ShapeError, match="dtype"):
        model.act(torch.zeros(2, 3, 64, 64, dtype=torch.int64))
    multi = build(**MULTIMODAL)
    with pytest.raises(ShapeError, match="joints"):
        multi.act({"cam": torch.zeros(2, 3, 64, 64, dtype=torch.uint8)})


def test_bad_batches_are_named(build) -> None:
    model = build()
    batch = make_batch(model.config, b=2, t=4)
    with pytest.raises(ShapeError, match="T >= 2"):
        model.loss({k: v[:, :1] for k, v in batch.items()})
    bad = dict(batch, action=batch["action"] * 2)
    with pytest.raises(ShapeError, match="one-hot"):
        model.loss(bad)
    with pytest.raises(ShapeError, match=r"\(B, T, 6\)"):
        model.loss(dict(batch, action=batch["action"][..., :4]))
    with pytest.raises(ShapeError, match="terminal"):
        model.loss({k: v for k, v in batch.items() if k != "terminal"})
    cont = build(**VECTOR)
    batch = make_batch(cont.config, b=2, t=4)
    with pytest.raises(ShapeError, match=r"\[-1, 1\]"):
        cont.loss(dict(batch, action=batch["action"] + 3.0))
    with pytest.raises(ShapeError, match=r"\[-1, 1\]"):
        cont.rollout(cont.initial_state(2), torch.full((2, 3, 3), 2.0))
