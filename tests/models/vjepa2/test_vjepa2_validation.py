"""Bad input to V-JEPA 2: clips shorter than the tubelet, frames not divisible by the patch,
actions of the wrong size, acting without a goal: clear errors naming the expected value."""

from __future__ import annotations

import pytest
import torch

from tests.models.vjepa2.conftest import make_batch
from worldflux import get_config
from worldflux.errors import ConfigError, ShapeError
from worldflux.models.vjepa2.module import VJEPA2, VJEPA2Pretrain
from worldflux.planning import PlanningError


def test_a_clip_shorter_than_the_tubelet_is_refused(pre: VJEPA2Pretrain) -> None:
    with pytest.raises(ShapeError, match="at least tubelet_size=2 frames, got sequences of 1"):
        pre.loss(make_batch(t=1))
    with pytest.raises(ShapeError, match="multiple of tubelet_size=2 frames"):
        pre.encoder(torch.zeros(1, 3, 3, 16, 16))
    with pytest.raises(ConfigError, match="clips of 1 frames are shorter than tubelet_size=2"):
        get_config("vjepa2:pretrain_ci", obs_shape=[1, 3, 16, 16])


def test_frames_not_divisible_by_the_patch_are_refused(pre: VJEPA2Pretrain) -> None:
    with pytest.raises(
        ConfigError, match=r"frames of 18x18 pixels must be divisible by patch_size=4"
    ):
        get_config("vjepa2:ci", obs_shape=[3, 18, 18])
    with pytest.raises(ShapeError, match="frame size 18x18 must be divisible by patch_size=4"):
        pre.encoder(torch.zeros(1, 3, 2, 18, 18))


def test_observations_of_the_wrong_shape_are_refused(ac: VJEPA2) -> None:
    with pytest.raises(ShapeError, match=r"observations must be \(B, T, 3, 16, 16\)"):
        ac.loss({"obs": torch.zeros(2, 4, 3, 8, 8), "action": torch.zeros(2, 4, 2)})


def test_actions_of_the_wrong_size_are_refused(ac: VJEPA2) -> None:
    batch = make_batch()
    batch["action"] = torch.zeros(2, 4, 3)
    with pytest.raises(ShapeError, match=r"actions must be \(2, 4, 2\) \(action_dim=2\)"):
        ac.loss(batch)
    with pytest.raises(ShapeError, match=r"actions must be \(1, 3, 2\)"):
        ac.rollout(ac.encode(batch["obs"][:1, 0]), torch.zeros(1, 3, 7))
    with pytest.raises(ShapeError, match=r"actions must be \(B, T, A\) = \(1, 2, 2\)"):
        ac.predictor(torch.zeros(1, 32, 24), torch.zeros(1, 2, 5), torch.zeros(1, 2, 2))


def test_clips_too_short_for_the_ac_loss_are_refused(ac: VJEPA2) -> None:
    with pytest.raises(ShapeError, match=r"at least auto_steps \+ 1 = 3 frames, got 2"):
        ac.loss(make_batch(t=2))


def test_acting_needs_a_goal(ac: VJEPA2) -> None:
    with pytest.raises(PlanningError, match="pass goal=<goal observation>"):
        ac.act(make_batch()["obs"][:, 0])


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"enc_heads": 5}, "enc_dim=24 must be divisible by enc_heads=5"),
        ({"pred_dim": 8, "pred_heads": 2}, "head width >= 6"),
        ({"mask_scales": [0.15]}, "one entry per mask generator"),
        ({"mask_scales": [0.15, 1.5]}, r"mask_scales in \(0, 1\)"),
        ({"action_dim": 1}, "action_dim"),
        ({"ema_momentum": 1.0}, "ema_momentum"),
    ],
)
def test_bad_config_values_name_the_field(overrides: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        get_config("vjepa2:ci", **overrides)
