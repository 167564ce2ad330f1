"""GameGAN bad-input errors: actions outside the action space, wrong frames, memory options."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from worldflux import create_world_model, get_config
from worldflux.errors import ConfigError, ShapeError


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return create_world_model("gan:ci")


def _batch(model, b: int = 2, t: int = 8, side: int = 16):  # type: ignore[no-untyped-def]
    action = F.one_hot(torch.randint(0, model.config.action_dim, (b, t)), model.config.action_dim)
    return {
        "obs": torch.randint(0, 256, (b, t, 3, side, side), dtype=torch.uint8),
        "action": action.float(),
    }


def test_action_index_outside_the_action_space_is_refused(model) -> None:  # type: ignore[no-untyped-def]
    state = model.initial_state(2)
    with pytest.raises(ShapeError, match=r"indices in \[0, 4\).*action_dim=4"):
        model.transition(state, torch.tensor([1, 7]))


def test_non_one_hot_actions_are_refused(model) -> None:  # type: ignore[no-untyped-def]
    batch = _batch(model)
    batch["action"][0, 3] = torch.tensor([0.5, 0.5, 0.0, 0.0])
    with pytest.raises(ShapeError, match="one-hot vectors over the 4 discrete actions"):
        model.loss(batch)


def test_actions_of_the_wrong_size_name_the_expected_shape(model) -> None:  # type: ignore[no-untyped-def]
    batch = _batch(model)
    batch["action"] = torch.zeros(2, 8, 6)
    with pytest.raises(ShapeError, match=r"\(2, 8, 4\)"):
        model.loss(batch)


def test_frames_of_the_wrong_size_are_refused(model) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ShapeError, match=r"obs_shape \[3, 16, 16\].*\(2, 8, 3, 32, 32\)"):
        model.loss(_batch(model, side=32))
    with pytest.raises(ShapeError, match="obs_shape"):
        model.encode(torch.zeros(2, 3, 8, 8))


def test_too_short_sequences_are_refused(model) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ShapeError, match="T=2"):
        model.loss(_batch(model, t=2))


@pytest.mark.parametrize(
    "option",
    [
        {"cycle_loss": True},
        {"num_components": 2},
        {"alpha_loss_multiplier": 1e-4},
        {"memory_flip_actions": [[0, 1]]},
    ],
)
def test_memory_options_on_a_preset_without_memory_are_clear_errors(option) -> None:  # type: ignore[no-untyped-def]
    name = next(iter(option))
    with pytest.raises(ConfigError, match=f"{name} needs the memory module.*memory=true"):
        get_config("gan:ci", **option)


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="gan_loss"):
        get_config("gan:ci", gan_loss="wgan")
    with pytest.raises(ConfigError, match="action_kind must be 'discrete'"):
        get_config("gan:ci", action_kind="continuous")
    with pytest.raises(ConfigError, match="temporal_window"):
        get_config("gan:base", batch_length=15)  # config.py's num_steps: one frame too short
    with pytest.raises(ConfigError, match="bottom_width"):
        get_config("gan:ci", bottom_width=3)
    with pytest.raises(ConfigError, match="memory_cells must be a square"):
        get_config("gan:vizdoom_memory", memory_cells=440)
    with pytest.raises(ConfigError, match="warm_up"):
        get_config("gan:ci", warm_up=8)
    with pytest.raises(ConfigError, match="num_components"):
        get_config("gan:vizdoom_memory", num_components=3)
