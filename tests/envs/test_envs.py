"""Environment wrappers, the registry and vectorised stepping."""

from __future__ import annotations

import numpy as np
import pytest

from worldflux.envs import make_env, make_vector_env
from worldflux.envs.embedded import Catch
from worldflux.errors import ConfigError, ShapeError


@pytest.mark.parametrize("action", ["discrete", "continuous"])
@pytest.mark.parametrize("obs", ["image", "vector"])
def test_dummy_spaces_and_dtypes(action: str, obs: str) -> None:
    env = make_env({"suite": "dummy", "id": f"{action}_{obs}", "episode_length": 3})
    first = env.reset()["obs"]
    space = env.spec.obs["obs"]
    assert first.shape == space.shape and first.dtype == space.dtype
    assert first.dtype == (np.uint8 if obs == "image" else np.float32)
    assert env.spec.action_kind == action
    a = np.zeros(env.spec.action_dim, np.float32)
    a[0] = 1.0
    obs2, reward, term, trunc = env.step(a)
    assert reward == 1.0 and not term and not trunc
    assert not np.array_equal(obs2["obs"], first)


def test_catch_rewards_follow_the_paddle() -> None:
    env = Catch(obs="vector", balls=2, seed=0)
    obs = env.reset()["obs"]
    rewards, done, steps = [], False, 0
    while not done:
        ball_col, paddle = obs[1], obs[2]
        move = 0 if np.isclose(ball_col, paddle) else (1 if ball_col > paddle else -1)
        obs_d, reward, done, _ = env.step(np.eye(3, dtype=np.float32)[move + 1])
        obs = obs_d["obs"]
        rewards.append(reward)
        steps += 1
    assert steps == 2 * (env.rows - 1)
    assert sum(rewards) == 2.0  # a greedy policy catches every ball


def test_catch_image_is_uint8_chw() -> None:
    env = Catch(obs="image", size=32)
    img = env.reset()["obs"]
    assert img.shape == (3, 32, 32) and img.dtype == np.uint8 and img.max() > 0


def test_wrong_action_shape_names_the_expected_shape() -> None:
    env = Catch()
    env.reset()
    with pytest.raises(ShapeError, match=r"\(3,\)"):
        env.step(np.zeros(5, np.float32))


def test_vector_env_autoreset_and_first_flags() -> None:
    envs = make_vector_env(
        {"suite": "dummy", "id": "discrete_vector", "num_envs": 3, "episode_length": 2}, seed=0
    )
    step = envs.step(None)
    assert step["first"].all() and step["obs"]["obs"].shape == (3, 8)
    act = np.eye(4, dtype=np.float32)[[0, 1, 0]]
    flags = []
    for _ in range(5):
        step = envs.step(act)
        flags.append((step["first"][0], step["last"][0], step["terminal"][0]))
        assert step["action"].shape == (3, 4)
        if step["first"][0]:
            assert not step["action"][0].any() and step["reward"][0] == 0
    # episode of 2 steps: reset, step, step(last), reset, step
    assert flags == [
        (False, False, False),
        (False, True, True),
        (True, False, False),
        (False, False, False),
        (False, True, True),
    ]
    done = envs.pop_finished()
    assert len(done) == 6 and {e.length for e in done} == {2}


def test_vector_env_rejects_wrong_action_batch() -> None:
    envs = make_vector_env({"suite": "embedded", "id": "catch", "num_envs": 2})
    envs.step(None)
    with pytest.raises(ShapeError, match=r"\(2, 3\)"):
        envs.step(np.zeros((3, 3), np.float32))


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"suite": "embedded", "id": "cach"}, "Did you mean 'catch'"),
        ({"suite": "gymm", "id": "x"}, "Did you mean 'gym'"),
        ({"suite": "embedded", "id": "catch", "bals": 2}, "Did you mean 'balls'"),
        ({"suite": "dummy", "id": "discrete_imag"}, "discrete_image"),
    ],
)
def test_unknown_env_names_the_problem(cfg: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_env(cfg)


def test_gym_unknown_id_suggests() -> None:
    pytest.importorskip("gymnasium")
    with pytest.raises(ConfigError, match="CartPole-v1"):
        make_env({"suite": "gym", "id": "CartPol-v1"})


def test_gym_vector_and_continuous_rescaling() -> None:
    pytest.importorskip("gymnasium")
    env = make_env({"suite": "gym", "id": "Pendulum-v1"}, seed=0)
    assert env.spec.action_kind == "continuous" and env.spec.obs["obs"].shape == (3,)
    env.reset()
    assert env._convert(np.array([1.0], np.float32))[0] == pytest.approx(2.0)
    assert env._convert(np.array([-1.0], np.float32))[0] == pytest.approx(-2.0)


def test_gym_pixels_from_render() -> None:
    gym = pytest.importorskip("gymnasium")
    from worldflux.envs.gym import GymEnv

    class Painted(gym.Env):
        metadata = {"render_modes": ["rgb_array"]}
        observation_space = gym.spaces.Box(-1, 1, (2,))
        action_space = gym.spaces.Discrete(2)

        def __init__(self, render_mode: str | None = None) -> None:
            self.render_mode, self.t = render_mode, 0

        def reset(self, *, seed=None, options=None):  # noqa: ANN001, ANN202
            self.t = 0
            return np.zeros(2, np.float32), {}

        def step(self, action):  # noqa: ANN001, ANN202
            self.t += 1
            return np.zeros(2, np.float32), 1.0, self.t >= 3, False, {}

        def render(self):  # noqa: ANN202
            return np.full((100, 80, 3), 10 * self.t, np.uint8)

    gym.register("WorldfluxTestPainted-v0", entry_point=Painted)
    env = GymEnv("WorldfluxTestPainted-v0", obs="both", size=(16, 16))
    first = env.reset()
    assert first["image"].shape == (3, 16, 16) and first["image"].dtype == np.uint8
    assert first["vector"].shape == (2,)
    obs, reward, term, _ = env.step(np.array([0.0, 1.0], np.float32))
    assert reward == 1.0 and int(obs["image"].mean()) == 10


@pytest.mark.parametrize(
    ("suite", "extra", "module"),
    [("atari", "atari", "ale_py"), ("dmc", "dmc", "dm_control"), ("crafter", "crafter", "crafter")],
)
def test_missing_suite_names_the_extra(suite: str, extra: str, module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        pass
    else:
        pytest.skip(f"{module} is installed")
    ids = {"atari": "pong", "dmc": "walker_walk", "crafter": "reward"}
    with pytest.raises(ImportError, match=rf"worldflux\[{extra}\]"):
        make_env({"suite": suite, "id": ids[suite]})


def test_reach_blob_images_show_sub_pixel_moves_and_shrink_toward_the_goal() -> None:
    import yaml

    from worldflux import catalog

    node = yaml.safe_load((catalog.conf_dir() / "env" / "reach_blob.yaml").read_text())
    assert node["blob"] > 0 and node["obs"] == "image"
    env = make_env({"suite": "embedded", "id": "reach", "obs": "image", "blob": node["blob"]}, 0)
    obs = env.reset()["obs"]
    assert obs.shape == (3, 16, 16) and obs.dtype == np.uint8
    image = env._image  # the observation of a position
    goal = image(np.zeros(2, np.float32)).astype(float)
    gaps = [np.abs(image(np.array([d, 0.0], np.float32)) - goal).mean() for d in (0.03, 0.1, 0.3)]
    assert 0 < gaps[0] < gaps[1] < gaps[2]  # a move of a fifth of a pixel changes the frame
    with pytest.raises(ConfigError, match="blob >= 0"):
        make_env({"suite": "embedded", "id": "reach", "obs": "image", "blob": -0.1})
