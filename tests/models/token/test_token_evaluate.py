"""The held-out evaluation of IRIS on Catch (``worldflux.models.token.evaluate``): fast checks."""

from __future__ import annotations

import pytest
import torch

from worldflux import create_world_model
from worldflux.errors import ShapeError
from worldflux.models.token.evaluate import (
    catch_episodes,
    catch_return,
    held_out_accuracy,
    object_accuracy,
)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_world_model("token:ci", action_dim=3)


def test_catch_episodes_are_whole_episodes_in_the_replay_layout() -> None:
    b = catch_episodes(3, size=16, seed=1)
    assert b["obs"].shape == (3, 29, 3, 16, 16) and b["obs"].dtype == torch.uint8
    assert b["first"][:, 0].all() and not b["first"][:, 1:].any()
    assert b["terminal"][:, -1].all() and not b["terminal"][:, :-1].any()
    assert (b["action"][:, 0] == 0).all() and (b["action"][:, 1:].sum(-1) == 1).all()
    # one reward of +-1 each time a ball lands (every 7 steps, 4 balls)
    assert (b["reward"].abs().sum(1) == 4).all()
    assert not torch.equal(b["obs"], catch_episodes(3, size=16, seed=2)["obs"])


def test_held_out_accuracy_reads_every_label_and_reports_baselines(model) -> None:
    batch = catch_episodes(2, size=16, seed=3)
    out = held_out_accuracy(model, batch)
    assert out["chance"] == 1 / 32
    for key in ("token_accuracy", "copy_accuracy", "reward_accuracy", "end_accuracy"):
        assert 0.0 <= out[key] <= 1.0, key
    # windows of max_blocks + 1 = 5 steps over 29: 7 windows, each 4 frames of 16 tokens - 1
    assert out["labels"] == 2 * 7 * (4 * 16 - 1)
    assert out["reconstruction"] > 0
    assert model.training  # restored


def test_copy_baseline_is_exact_on_frames_that_repeat(model) -> None:
    batch = catch_episodes(1, size=16, seed=4)
    batch["obs"][:] = batch["obs"][:, :1]  # every frame the same: copying is always right
    assert held_out_accuracy(model, batch)["copy_accuracy"] == pytest.approx(
        (4 * 16 - 16) / (4 * 16 - 1)
    )


class _Identity(torch.nn.Module):
    """A tokenizer that keeps every pixel (codes = frames)."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(1, 1)

    def encode(self, x: torch.Tensor):
        return type("Q", (), {"z_q": x})()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z


def test_object_accuracy_is_one_for_a_lossless_tokenizer_and_chance_for_a_blank_one() -> None:
    m = create_world_model("token:ci", action_dim=3)
    m.tokenizer = _Identity()
    assert object_accuracy(m) == {"ball": 1.0, "paddle": 1.0}
    m.tokenizer.decode = lambda z: torch.full_like(z, -1.0)  # a black frame
    out = object_accuracy(m)
    assert out["ball"] == pytest.approx(1 / 35) and out["paddle"] == pytest.approx(1 / 5)


def test_catch_return_random_and_agent(model) -> None:
    mean, err = catch_return(None, 4, seed=5)
    assert -4 <= mean <= 4 and err >= 0
    mean, _ = catch_return(model, 1, seed=5, balls=1)  # 7 steps an episode
    assert -1 <= mean <= 1


def test_bad_arguments_raise_clear_errors(model) -> None:
    with pytest.raises(ShapeError, match="episodes"):
        catch_episodes(0)
    with pytest.raises(ShapeError, match="episodes"):
        catch_return(None, 0)
