"""Scene3D: spaces, determinism, actions, and the camera convention shared with the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldflux.envs.registry import make_env
from worldflux.envs.scene3d import Scene3D, camera_rays
from worldflux.errors import ConfigError, ShapeError
from worldflux.models.renderer3d import rays as R


def test_observations_carry_views_and_poses() -> None:
    env = make_env({"suite": "embedded", "id": "scene3d", "size": 16, "views": 4}, seed=0)
    obs = env.reset()
    assert obs["views"].shape == (12, 16, 16) and obs["views"].dtype == np.uint8
    assert obs["poses"].shape == (28,) and np.isfinite(obs["poses"]).all()
    trig = obs["poses"].reshape(4, 7)[:, 3:]
    np.testing.assert_allclose(trig[:, 0] ** 2 + trig[:, 1] ** 2, 1, atol=1e-5)
    assert env.render().shape == (16, 64, 3)


def test_same_seed_same_scene_and_pushing_moves_the_first_object() -> None:
    a, b = Scene3D(size=16, seed=3), Scene3D(size=16, seed=3)
    oa, ob = a.reset(), b.reset()
    assert all(np.array_equal(oa[k], ob[k]) for k in oa)
    pose = a.random_pose()
    before = a.render_pose(pose)
    start = a._pos[0].copy()
    _, reward, term, trunc = a.step(np.array([1.0, 0.0], np.float32))
    assert a._pos[0][0] > start[0] and a._pos[0][1] == start[1]
    assert reward <= 0 and not term and not trunc
    assert not np.array_equal(before, a.render_pose(pose)), "moving an object changes the image"


def test_numpy_and_torch_rays_agree() -> None:
    env = Scene3D(size=8, seed=0)
    env.reset()
    pose = env.random_pose()
    o, d = camera_rays(pose, 8, env.fov)
    pix = torch.arange(64)[None]
    to, td = R.pixel_rays(torch.as_tensor(pose)[None].double(), pix, 8, 8, env.fov)
    np.testing.assert_allclose(to[0].numpy(), o, atol=1e-6)
    np.testing.assert_allclose(td[0].numpy(), d, atol=1e-6)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="views >= 1"):
        Scene3D(views=0)
    with pytest.raises(ConfigError, match="fov"):
        Scene3D(fov=200.0)
    with pytest.raises(ShapeError, match="7 finite numbers"):
        camera_rays(np.array([0, 1, 2, np.nan, 0, 1, 0.0]), 4, 60.0)
