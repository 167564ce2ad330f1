"""DiT bad input: wrong context length, a latent side not divisible by the patch, sampler steps
out of range and other config mistakes are clear errors naming the field and expected value."""

from __future__ import annotations

import pytest
import torch

from tests.models.dit.helpers import tiny, tiny_config
from worldflux import get_config
from worldflux.errors import ConfigError, ShapeError
from worldflux.models.dit.config import DiTConfig


@pytest.fixture(scope="module")
def model():  # noqa: ANN201
    return tiny().eval()


def test_wrong_context_length(model) -> None:  # noqa: ANN001
    frames = torch.zeros(2, 3, 3, 16, 16, dtype=torch.uint8)  # 3 frames, context_size is 4
    with pytest.raises(ShapeError, match="context_size=4"):
        model.sample(frames, num_steps=2)
    with pytest.raises(ShapeError, match="context_size=4"):
        model.predict_next(torch.zeros(2, 3, 3, 16, 16), torch.zeros(2, 2))
    with pytest.raises(ShapeError, match=r"at least context_size \+ 1 = 5 frames"):
        from tests.test_contract import make_batch

        model.loss(make_batch(model.config, t=5) | {"obs": torch.zeros(2, 4, 3, 16, 16)})


def test_latent_side_not_divisible_by_patch() -> None:
    with pytest.raises(ConfigError, match="latent side 15.*divisible by patch_size=4"):
        tiny_config(obs_shape=[3, 15, 15])
    with pytest.raises(ConfigError, match="divisible by 8"):
        get_config("dit:base", obs_shape=[3, 220, 220])
    with pytest.raises(ConfigError, match="latent side 7.*patch_size=2"):
        DiTConfig(obs_shape=[3, 56, 56])


def test_sampler_steps_out_of_range(model) -> None:  # noqa: ANN001
    obs = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
    for steps in (0, 1001):
        with pytest.raises(ConfigError, match=r"sampler steps must be in \[1, 1000\]"):
            model.sample(obs, num_steps=steps)
    with pytest.raises(ConfigError, match="sample_steps=2000 must be in"):
        tiny_config(sample_steps=2000)
    with pytest.raises(ConfigError, match="sample_steps"):
        tiny_config(sample_steps=0)
    with pytest.raises(ConfigError, match="sampler must be one of"):
        tiny_config(sampler="euler")


def test_other_config_mistakes() -> None:
    with pytest.raises(ConfigError, match="batch_length=4 must be >= context_size \\+ 1 = 5"):
        tiny_config(batch_length=4)
    with pytest.raises(ConfigError, match="latent must be one of"):
        tiny_config(latent="vqgan")
    with pytest.raises(ConfigError, match="frames must be square"):
        tiny_config(obs_shape=[3, 16, 8])
    with pytest.raises(ConfigError, match="ema_decay"):
        tiny_config(ema_decay=1.0)
    with pytest.raises(ConfigError, match="pos_embed_init must be one of"):
        tiny_config(pos_embed_init="rope")


def test_bad_observations_and_actions(model) -> None:  # noqa: ANN001
    with pytest.raises(ShapeError, match="3, 16, 16"):
        model.encode(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ShapeError, match=r"action must be \(B, A\)"):
        model.predict_next(torch.zeros(2, 4, 3, 16, 16), torch.zeros(2, 5))
    with pytest.raises(ShapeError, match="goal"):
        model.act(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))


def test_sd_vae_without_weights_is_a_clear_error() -> None:
    model = tiny(latent="sd_vae", obs_shape=[3, 32, 32])
    with pytest.raises(ConfigError, match="vae_weights"):
        model.encode(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
