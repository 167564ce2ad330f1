"""The optional suites against the real packages (skipped when an extra is not installed).

Install the extras to run them: ``pip install 'worldflux[atari,dmc,crafter,gym]'`` plus
``gymnasium[classic-control]`` (pygame) for CartPole pixels; DMC pixels need libEGL
(``MUJOCO_GL=egl``) or OSMesa (``MUJOCO_GL=osmesa``).
"""

from __future__ import annotations

import ctypes.util
import os

import numpy as np
import pytest

from worldflux.envs import make_env
from worldflux.errors import ConfigError


def _onehot(n: int, i: int) -> np.ndarray:
    return np.eye(n, dtype=np.float32)[i]


# --------------------------------------------------------------------------------------- Atari


def test_atari_100k_protocol() -> None:
    pytest.importorskip("ale_py")
    env = make_env(
        {
            "suite": "atari",
            "id": "pong",
            "size": [64, 64],
            "repeat": 4,
            "sticky": False,
            "actions": "needed",
            "noops": 30,
            "length": 108_000,
        },
        seed=0,
    )
    assert env.spec.describe() == "obs {obs: image (3, 64, 64)}, action discrete(6)"
    assert env.ale.getFloat("repeat_action_probability") == 0.0  # no sticky actions
    assert env.ale.getInt("frame_skip") == 1  # the wrapper repeats and max-pools itself
    assert [a.name for a in env.actions] == [
        "NOOP",
        "FIRE",
        "RIGHT",
        "LEFT",
        "RIGHTFIRE",
        "LEFTFIRE",
    ]
    obs = env.reset()["obs"]
    assert obs.shape == (3, 64, 64) and obs.dtype == np.uint8 and obs.max() > obs.min()
    rng = np.random.default_rng(0)
    rewards = []
    for _ in range(200):
        before = env.ale.getEpisodeFrameNumber()
        out, reward, terminal, truncated = env.step(_onehot(6, int(rng.integers(6))))
        assert env.ale.getEpisodeFrameNumber() - before == 4  # action repeat 4
        assert out["obs"].shape == (3, 64, 64) and out["obs"].dtype == np.uint8
        assert isinstance(reward, float) and not terminal and not truncated
        rewards.append(reward)
    # Pong scores -1/+1 per point, unclipped and summed over the repeated frames.
    assert set(rewards) <= {-1.0, 0.0, 1.0} and -1.0 in rewards
    assert np.array_equal(env.render(), np.maximum(*env._buffers))  # last two frames pooled
    env.close()


def test_atari_truncation_repeat_one_and_unknown_game() -> None:
    pytest.importorskip("ale_py")
    from worldflux.envs.atari import Atari

    env = Atari("pong", length=400, noops=0, seed=1)
    env.reset()
    steps, terminal, truncated = 0, False, False
    while not (terminal or truncated):
        _, _, terminal, truncated = env.step(_onehot(6, 0))
        steps += 1
    assert (steps, terminal, truncated) == (100, False, True)  # 400 frames / repeat 4

    one = Atari("pong", repeat=1, noops=0, seed=0)
    one.reset()
    for _ in range(60):
        before = one.ale.getEpisodeFrameNumber()
        obs = one.step(_onehot(6, 0))[0]["obs"]
        assert one.ale.getEpisodeFrameNumber() - before == 1
    screen = one.ale.getScreenRGB()
    assert np.array_equal(one.render(), screen)  # repeat 1: no stale frame in the max-pool
    assert obs.shape == (3, 64, 64)

    with pytest.raises(ConfigError, match="Did you mean 'pong'"):
        Atari("pongg")
    with pytest.raises(ConfigError, match="repeat"):
        Atari("pong", repeat=0)


def test_atari_pong_ends_with_game_over() -> None:
    pytest.importorskip("ale_py")
    from worldflux.envs.atari import Atari

    env = Atari("pong", seed=0, noops=0)
    env.reset()
    total, terminal, truncated, steps = 0.0, False, False, 0
    while not (terminal or truncated):
        _, reward, terminal, truncated = env.step(_onehot(6, 0))  # NOOP loses 0:21
        total += reward
        steps += 1
        assert steps < 2000
    assert terminal and not truncated and total == -21.0


# ------------------------------------------------------------------------------ DeepMind Control


def test_dmc_state_walker() -> None:
    pytest.importorskip("dm_control")
    env = make_env(
        {"suite": "dmc", "id": "walker_walk", "obs": "state", "action_repeat": 2}, seed=0
    )
    assert env.spec.describe() == "obs {obs: vector (24,)}, action continuous(6)"
    obs = env.reset()["obs"]
    assert obs.shape == (24,) and obs.dtype == np.float32
    control_dt = env.env.control_timestep()
    rng = np.random.default_rng(0)
    steps, rewards, terminal, truncated = 0, [], False, False
    while not (terminal or truncated):
        t0 = env.env.physics.data.time
        out, reward, terminal, truncated = env.step(rng.uniform(-1, 1, 6).astype(np.float32))
        assert env.env.physics.data.time - t0 == pytest.approx(2 * control_dt)  # repeat 2
        assert out["obs"].shape == (24,) and out["obs"].dtype == np.float32
        assert 0.0 <= reward <= 2.0  # two control steps of a [0, 1] reward
        rewards.append(reward)
        steps += 1
    # 1000 control steps at repeat 2; DMC ends by time limit only: truncated, not terminal.
    assert (steps, terminal, truncated) == (500, False, True)
    assert sum(rewards) > 0.0
    # Out-of-range actions are clipped to the box before reaching MuJoCo.
    env.reset()
    env.step(np.full(6, 5.0, np.float32))
    assert np.allclose(env.env.physics.data.ctrl, env._high)
    env.close()


def test_dmc_task_names() -> None:
    pytest.importorskip("dm_control")
    from worldflux.envs.dmc import DMC

    assert (
        DMC("ball_in_cup_catch").spec.describe() == "obs {obs: vector (8,)}, action continuous(2)"
    )
    assert DMC("point_mass_easy").spec.action_dim == 2
    with pytest.raises(ConfigError, match="Did you mean 'walker_walk'"):
        DMC("walker_wlk")


def test_dmc_pixels_and_both() -> None:
    pytest.importorskip("dm_control")
    if "MUJOCO_GL" not in os.environ and not ctypes.util.find_library("EGL"):
        pytest.skip("no headless OpenGL: install libEGL or set MUJOCO_GL=osmesa")
    from worldflux.envs.dmc import DMC

    env = DMC("walker_walk", obs="pixels", seed=0)
    assert env.spec.describe() == "obs {obs: image (3, 64, 64)}, action continuous(6)"
    first = env.reset()["obs"]
    assert first.shape == (3, 64, 64) and first.dtype == np.uint8 and first.std() > 5
    for _ in range(10):
        obs, reward, terminal, truncated = env.step(np.ones(6, np.float32))
    assert obs["obs"].shape == (3, 64, 64) and not np.array_equal(obs["obs"], first)
    both = DMC("walker_walk", obs="both", seed=0)
    out = both.reset()
    assert out["image"].shape == (3, 64, 64) and out["image"].dtype == np.uint8
    assert out["vector"].shape == (24,) and out["vector"].dtype == np.float32
    assert DMC("quadruped_walk", obs="pixels").camera == 2


# ------------------------------------------------------------------------------------- Crafter


def test_crafter_reward_task() -> None:
    pytest.importorskip("crafter")
    env = make_env({"suite": "crafter", "id": "reward", "size": [64, 64]}, seed=0)
    assert env.spec.describe() == "obs {obs: image (3, 64, 64)}, action discrete(17)"
    obs = env.reset()["obs"]
    assert obs.shape == (3, 64, 64) and obs.dtype == np.uint8
    rng = np.random.default_rng(0)
    rewards = []
    for _ in range(100):
        out, reward, terminal, truncated = env.step(_onehot(17, int(rng.integers(17))))
        assert out["obs"].shape == (3, 64, 64) and out["obs"].dtype == np.uint8
        assert np.array_equal(env.render(), out["obs"].transpose(1, 2, 0))
        rewards.append(reward)
        if terminal or truncated:
            env.reset()
    # Rewards are achievement unlocks (+1) and health changes (+-0.1 per point).
    assert all(abs(r - round(r * 10) / 10) < 1e-6 for r in rewards)

    from worldflux.envs.crafter import Crafter

    short = Crafter(length=30, seed=1)
    short.reset()
    steps, terminal, truncated = 0, False, False
    while not (terminal or truncated):
        _, _, terminal, truncated = short.step(_onehot(17, 0))  # noop: survives 30 steps
        steps += 1
    assert (steps, terminal, truncated) == (30, False, True)


# ------------------------------------------------------------------------------------ gymnasium


def test_gym_cartpole_pixels() -> None:
    pytest.importorskip("gymnasium")
    pytest.importorskip("pygame")
    env = make_env({"suite": "gym", "id": "CartPole-v1", "obs": "image", "size": [64, 64]}, seed=0)
    assert env.spec.describe() == "obs {obs: image (3, 64, 64)}, action discrete(2)"
    obs = env.reset()["obs"]
    assert obs.shape == (3, 64, 64) and obs.dtype == np.uint8 and obs.min() < obs.max()
    steps, total, terminal, truncated = 0, 0.0, False, False
    while not (terminal or truncated):  # always pushing left topples the pole
        out, reward, terminal, truncated = env.step(_onehot(2, 0))
        assert out["obs"].shape == (3, 64, 64) and out["obs"].dtype == np.uint8
        total += reward
        steps += 1
    assert terminal and not truncated and total == steps and steps < 50
    assert env.render().shape == (400, 600, 3)
    both = make_env({"suite": "gym", "id": "CartPole-v1", "obs": "both"}, seed=0).reset()
    assert both["image"].shape == (3, 64, 64) and both["vector"].shape == (4,)


def test_gym_pendulum_repeat_and_truncation() -> None:
    pytest.importorskip("gymnasium")
    env = make_env({"suite": "gym", "id": "Pendulum-v1", "action_repeat": 3}, seed=0)
    assert env.spec.describe() == "obs {obs: vector (3,)}, action continuous(1)"
    env.reset()
    steps, terminal, truncated = 0, False, False
    while not (terminal or truncated):
        obs, reward, terminal, truncated = env.step(np.ones(1, np.float32))
        assert obs["obs"].dtype == np.float32 and -3 * 16.3 <= reward <= 0.0
        steps += 1
    assert env.env.unwrapped.last_u == pytest.approx(2.0)  # +1 rescaled to the box's high
    assert (steps, terminal, truncated) == (67, False, True)  # 200 steps / repeat 3
