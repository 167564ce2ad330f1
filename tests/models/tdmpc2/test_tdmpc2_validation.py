"""TD-MPC2 input validation: empty batches, non-finite rewards and observations, actions outside
[-1, 1] and malformed latents are refused with a ShapeError naming the expected value."""

from __future__ import annotations

import pytest
import torch

from worldflux import get_config
from worldflux.errors import ShapeError
from worldflux.models.tdmpc2.module import ACTION_TOLERANCE, TDMPC2

OBS, ACT, B, T = 24, 6, 4, 4


def make_batch(b: int = B, t: int = T) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, :1] = True
    return {
        "obs": torch.randn(b, t, OBS, generator=g),
        "action": torch.rand(b, t, ACT, generator=g) * 2 - 1,
        "reward": torch.rand(b, t, generator=g),
        "first": first,
        "terminal": torch.zeros(b, t, dtype=torch.bool),
    }


@pytest.fixture(scope="module")
def model() -> TDMPC2:
    return TDMPC2(get_config("tdmpc2:ci"))


@pytest.fixture(scope="module")
def z(model: TDMPC2) -> torch.Tensor:
    return model.encode(torch.randn(2, OBS))


def test_encode_refuses_an_empty_batch(model: TDMPC2) -> None:
    with pytest.raises(ShapeError, match=r"B must be >= 1 in \(B, 24\), got 0"):
        model.encode(torch.randn(0, OBS))


def test_encode_refuses_an_empty_sequence(model: TDMPC2) -> None:
    with pytest.raises(ShapeError, match=r"T must be >= 1 in \(B, T, 24\), got 0"):
        model.encode(torch.randn(2, 0, OBS))


def test_act_refuses_an_empty_batch(model: TDMPC2) -> None:
    with pytest.raises(ShapeError, match=r"B must be >= 1"):
        model.act(torch.randn(0, OBS))


def test_loss_refuses_an_empty_batch(model: TDMPC2) -> None:
    with pytest.raises(ShapeError, match=r"B must be >= 1 in \(B, T, 24\)"):
        model.loss(make_batch(b=0))


def test_loss_refuses_an_empty_sequence(model: TDMPC2) -> None:
    with pytest.raises(ShapeError, match=r"T must be >= 1"):
        model.loss(make_batch(t=0))


def test_transition_refuses_an_empty_batch(model: TDMPC2, z: torch.Tensor) -> None:
    with pytest.raises(ShapeError, match=r"B must be >= 1 in \(B, \d+\)"):
        model.transition(z[:0], torch.zeros(0, ACT))


def test_rollout_refuses_an_empty_batch(model: TDMPC2, z: torch.Tensor) -> None:
    with pytest.raises(ShapeError, match=r"B must be >= 1"):
        model.rollout(z[:0], torch.zeros(0, 3, ACT))


def test_rollout_refuses_an_empty_horizon(model: TDMPC2, z: torch.Tensor) -> None:
    with pytest.raises(ShapeError, match=r"H must be >= 1 in \(B, H, 6\)"):
        model.rollout(z, torch.zeros(2, 0, ACT))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_loss_refuses_non_finite_rewards(model: TDMPC2, bad: float) -> None:
    batch = make_batch()
    batch["reward"][1, 2] = bad
    with pytest.raises(ShapeError, match=r"batch\['reward'\] must be finite"):
        model.loss(batch)


def test_loss_refuses_actions_outside_the_unit_box(model: TDMPC2) -> None:
    batch = make_batch()
    batch["action"][0, 1, 2] = 1.5
    with pytest.raises(ShapeError, match=r"must lie in \[-1, 1\], got values in \[.*, 1\.5\]"):
        model.loss(batch)


def test_loss_accepts_actions_within_the_tolerance(model: TDMPC2) -> None:
    batch = make_batch()
    batch["action"][0, 1, 2] = 1.0 + ACTION_TOLERANCE / 2
    assert torch.isfinite(model.loss(batch).total)


def test_loss_refuses_nan_actions(model: TDMPC2) -> None:
    batch = make_batch()
    batch["action"][0, 1, 2] = float("nan")
    with pytest.raises(ShapeError, match="actions must be finite"):
        model.loss(batch)


def test_loss_refuses_non_finite_observations(model: TDMPC2) -> None:
    batch = make_batch()
    batch["obs"][0, 0, 0] = float("inf")
    with pytest.raises(ShapeError, match="observations must be finite"):
        model.loss(batch)


def test_act_refuses_nan_observations(model: TDMPC2) -> None:
    obs = torch.randn(2, OBS)
    obs[1, 3] = float("nan")
    with pytest.raises(ShapeError, match="observations must be finite"):
        model.act(obs)


def test_transition_refuses_actions_outside_the_unit_box(model: TDMPC2, z: torch.Tensor) -> None:
    with pytest.raises(ShapeError, match=r"\[-1, 1\]"):
        model.transition(z, torch.full((2, ACT), -2.0))


def test_transition_refuses_an_action_batch_of_another_size(model: TDMPC2, z: torch.Tensor) -> None:
    with pytest.raises(ShapeError, match=r"\(B, 6\) = \(2, 6\), got \(3, 6\)"):
        model.transition(z, torch.zeros(3, ACT))


def test_rollout_refuses_actions_outside_the_unit_box(model: TDMPC2, z: torch.Tensor) -> None:
    actions = torch.zeros(2, 3, ACT)
    actions[1, 2, 0] = 3.0
    with pytest.raises(ShapeError, match=r"\[-1, 1\]"):
        model.rollout(z, actions)


def test_transition_refuses_a_latent_of_the_wrong_size(model: TDMPC2, z: torch.Tensor) -> None:
    size = model.config.latent_dim
    with pytest.raises(ShapeError, match=rf"latent state must have shape \(B, {size}\)"):
        model.transition(z[:, :-1], torch.zeros(2, ACT))


def test_rollout_refuses_a_nan_latent(model: TDMPC2, z: torch.Tensor) -> None:
    bad = z.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ShapeError, match="latent state must be finite"):
        model.rollout(bad, torch.zeros(2, 3, ACT))
