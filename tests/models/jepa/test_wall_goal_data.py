"""The two-rooms/wall environment and goal observations through episodes, datasets and replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from worldflux.data.episodes import EpisodeRecorder, load_replay, write_episode, write_spec
from worldflux.envs.registry import make_env, make_vector_env

WALL = {"suite": "embedded", "id": "wall", "size": 32, "door_space": 3, "border": 3}


def test_the_wall_blocks_except_at_the_door() -> None:
    env = make_env({**WALL, "max_step": 1.0}, seed=0)
    env.reset()
    env.position = np.array([10.0, 25.0])  # left room, far from the door
    for _ in range(30):
        env.step(np.array([1.0, 0.0], dtype=np.float32))
    assert env.room(env.position) == 0 and env.position[0] < env.wall_x
    env.position = np.array([10.0, float(env.door_y)])  # level with the door
    for _ in range(30):
        env.step(np.array([1.0, 0.0], dtype=np.float32))
    assert env.room(env.position) == 1
    obs = env.goal_observation()["obs"]
    assert obs.shape == (2, 32, 32) and obs.dtype == np.uint8 and env.spec.extras["goal"]


def test_goals_travel_through_episodes_datasets_and_replay(tmp_path: Path) -> None:
    envs = make_vector_env({**WALL, "max_steps": 5}, seed=0, num_envs=2)
    recorder = EpisodeRecorder(envs.spec, envs.num_envs)
    step = envs.step(None)
    assert step["goal"]["obs"].shape == (2, 2, 32, 32)
    goals = [e.goal_observation()["obs"] for e in envs.envs]
    episodes = recorder.add(step)
    rng = np.random.default_rng(0)
    while len(episodes) < 2:
        episodes += recorder.add(envs.step(rng.uniform(-1, 1, (2, 2)).astype(np.float32)))
    first = episodes[0]
    assert first["goal/obs"].shape == (len(first["reward"]), 2, 32, 32)
    assert any(np.array_equal(first["goal/obs"][0], g) for g in goals)
    write_spec(tmp_path, envs.spec)
    for i, ep in enumerate(episodes):
        write_episode(tmp_path, i, ep)
    batch = load_replay(tmp_path).sample(3, 2)
    assert batch["goal"].shape == (3, 2, 32, 32) and batch["obs"].shape == (3, 2, 2, 32, 32)
