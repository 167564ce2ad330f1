"""The two-rooms/wall environment and goal observations through episodes, datasets and replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from worldflux.data.episodes import EpisodeRecorder, load_replay, write_episode, write_spec
from worldflux.envs.registry import make_env, make_vector_env
from worldflux.errors import ConfigError

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


def test_directed_behaviour_is_pldms_walk_and_collection_uses_it() -> None:
    from worldflux.envs.wall import STEP_HIGH, STEP_LOW, Wall
    from worldflux.training.collector import Collector

    env = Wall(size=32, max_step=1.5, border=3, door_space=3, behaviour="directed", seed=0)
    env.reset()
    acts = np.stack([env.behaviour_action() for _ in range(200)])
    lengths = np.linalg.norm(acts, axis=1)
    assert lengths.min() >= STEP_LOW - 1e-6 and lengths.max() <= STEP_HIGH + 1e-6
    # headings turn by small von Mises steps: consecutive actions point the same way
    cos = (acts[1:] * acts[:-1]).sum(1) / (lengths[1:] * lengths[:-1])
    assert np.median(cos) > 0.8
    assert Wall(size=32, border=3, door_space=3).behaviour_action() is None  # uniform
    # episodes aimed through the door start on a line through it
    door = Wall(size=32, max_step=1.5, border=3, door_space=3, max_steps=16, cross=False,
                behaviour="directed", door_rate=1.0, seed=1)  # fmt: skip
    crossed = 0
    for _ in range(40):
        door.reset()
        room = door.room(door.position)
        for _ in range(16):
            door.step(door.behaviour_action())
        crossed += door.room(door.position) != room
    assert crossed >= 8
    # python -m worldflux.collect's random policy is the environments' behaviour
    cfg = {"suite": "embedded", "id": "wall", "size": 32, "border": 3, "door_space": 3,
           "max_step": 1.5, "behaviour": "directed", "num_envs": 2}  # fmt: skip
    collector = Collector(make_vector_env(cfg, seed=0), None, seed=0)
    collector.step()
    before = [e._heading for e in collector.envs.envs]
    step = collector.step()
    assert np.allclose(np.linalg.norm(step["action"], axis=1) <= STEP_HIGH + 1e-6, True)
    assert [e._heading for e in collector.envs.envs] != before
    with pytest.raises(ConfigError, match="door_rate"):
        Wall(door_rate=0.1)
