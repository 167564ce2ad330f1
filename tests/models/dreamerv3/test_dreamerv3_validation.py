"""DreamerV3 input validation: empty batches and sequences, malformed recurrent states and
non-finite observations are refused with a ShapeError naming the expected keys or shape."""

from __future__ import annotations

import pytest
import torch

from tests.models.dreamerv3.conftest import VECTOR, make_batch
from worldflux import get_config
from worldflux.errors import ShapeError
from worldflux.models.dreamerv3.module import DreamerV3


@pytest.fixture(scope="module")
def model() -> DreamerV3:
    return DreamerV3(get_config("dreamer:ci", **VECTOR))


@pytest.fixture(scope="module")
def state(model: DreamerV3) -> dict[str, torch.Tensor]:
    return model.initial_state(2)


def _actions(b: int, t: int | None = None) -> torch.Tensor:
    return torch.zeros(b, 3) if t is None else torch.zeros(b, t, 3)


def test_encode_refuses_an_empty_batch(model: DreamerV3) -> None:
    with pytest.raises(ShapeError, match=r"B \(axis 0 of \(B\)\) must be >= 1, got 0"):
        model.encode(torch.randn(0, 7))


def test_encode_refuses_an_empty_sequence(model: DreamerV3) -> None:
    with pytest.raises(ShapeError, match=r"T \(axis 1 of \(B, T\)\) must be >= 1, got 0"):
        model.encode(torch.randn(2, 0, 7))


def test_observe_refuses_an_empty_batch(model: DreamerV3) -> None:
    with pytest.raises(ShapeError, match=r"B .* must be >= 1, got 0"):
        model.observe(torch.randn(0, 4, 7), _actions(0, 4), torch.zeros(0, 4, dtype=torch.bool))


def test_act_refuses_an_empty_batch(model: DreamerV3) -> None:
    with pytest.raises(ShapeError, match=r"B .* must be >= 1, got 0"):
        model.act(torch.randn(0, 7))


def test_loss_refuses_an_empty_batch(model: DreamerV3) -> None:
    with pytest.raises(ShapeError, match=r"B \(axis 0 of \(B, T\)\) must be >= 1"):
        model.loss({k: v[:0] for k, v in make_batch(model.config).items()})


def test_loss_refuses_an_empty_sequence(model: DreamerV3) -> None:
    batch = make_batch(model.config, t=2)
    batch = {k: v[:, :0] for k, v in batch.items()}
    with pytest.raises(ShapeError, match=r"T \(axis 1 of \(B, T\)\) must be >= 1"):
        model.loss(batch)


def test_transition_refuses_an_empty_batch(model: DreamerV3) -> None:
    with pytest.raises(ShapeError, match=r"B .* must be >= 1, got 0"):
        model.transition(model.initial_state(0), _actions(0))


def test_rollout_refuses_an_empty_batch(model: DreamerV3) -> None:
    with pytest.raises(ShapeError, match=r"B .* must be >= 1, got 0"):
        model.rollout(model.initial_state(0), _actions(0, 3))


def test_transition_names_the_missing_state_keys(model: DreamerV3, state: dict) -> None:
    with pytest.raises(
        ShapeError, match=r"state lacks keys \['stoch'\]; expected deter \(B, \d+\)"
    ):
        model.transition({"deter": state["deter"]}, _actions(2))


def test_rollout_names_the_missing_state_keys(model: DreamerV3) -> None:
    with pytest.raises(ShapeError, match=r"lacks keys \['deter', 'stoch'\]"):
        model.rollout({}, _actions(2, 3))


def test_transition_refuses_a_state_of_mixed_batch_sizes(model: DreamerV3, state: dict) -> None:
    bad = {**state, "stoch": state["stoch"][:1]}
    with pytest.raises(ShapeError, match=r"state\['stoch'\] must have shape .* = \(2, "):
        model.transition(bad, _actions(2))


def test_transition_refuses_a_state_of_the_wrong_size(model: DreamerV3, state: dict) -> None:
    bad = {**state, "deter": state["deter"][:, :-1]}
    size = state["deter"].shape[1]
    with pytest.raises(ShapeError, match=rf"state\['deter'\] must have shape \(B, {size}\)"):
        model.transition(bad, _actions(2))


def test_act_refuses_a_state_of_another_batch_size(model: DreamerV3, state: dict) -> None:
    with pytest.raises(ShapeError, match=r"state\['deter'\] must have shape .* = \(3, \d+\)"):
        model.act(torch.randn(3, 7), state)


def test_act_names_the_missing_action_of_a_state(model: DreamerV3, state: dict) -> None:
    bad = {k: v for k, v in state.items() if k != "action"}
    with pytest.raises(ShapeError, match=r"state lacks keys \['action'\]"):
        model.act(torch.randn(2, 7), bad)


def test_observe_refuses_a_state_of_another_batch_size(model: DreamerV3, state: dict) -> None:
    with pytest.raises(ShapeError, match=r"= \(3, \d+\), got \(2, \d+\)"):
        model.observe(
            torch.randn(3, 4, 7), _actions(3, 4), torch.zeros(3, 4, dtype=torch.bool), state
        )


def test_decode_names_the_missing_state_keys(model: DreamerV3, state: dict) -> None:
    with pytest.raises(ShapeError, match=r"lacks keys \['stoch'\]"):
        model.decode({"deter": state["deter"]})


def test_loss_refuses_non_finite_observations(model: DreamerV3) -> None:
    batch = make_batch(model.config)
    batch["obs"][1, 2, 0] = float("nan")
    with pytest.raises(ShapeError, match=r"observation 'obs' must be finite"):
        model.loss(batch)


def test_act_refuses_infinite_observations(model: DreamerV3) -> None:
    obs = torch.randn(2, 7)
    obs[0, 0] = float("inf")
    with pytest.raises(ShapeError, match=r"observation 'obs' must be finite"):
        model.act(obs)


def test_rollout_refuses_a_non_finite_state(model: DreamerV3, state: dict) -> None:
    bad = {**state, "deter": state["deter"].clone()}
    bad["deter"][0, 0] = float("inf")
    with pytest.raises(ShapeError, match=r"state\['deter'\] must be finite"):
        model.rollout(bad, _actions(2, 3))
