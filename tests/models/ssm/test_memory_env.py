"""The embedded Memory task (worldflux.envs.memory): cue, delay, recall."""

from __future__ import annotations

import numpy as np
import pytest

from worldflux.envs.memory import Memory
from worldflux.envs.registry import make_env
from worldflux.errors import ConfigError


def _onehot(i: int, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float32)
    out[i] = 1.0
    return out


@pytest.mark.parametrize("answer_right", [True, False])
def test_cue_shown_once_then_recalled_after_the_delay(answer_right: bool) -> None:
    env = Memory(cues=3, delay=4, seed=0)
    obs = env.reset()["obs"]
    cue = int(np.argmax(obs[:3]))
    assert obs[cue] == 1.0 and obs[-1] == 0.0
    for _ in range(4):  # delay: blank observations, no reward, whatever the action
        obs, reward, done, _ = env.step(_onehot(cue, 3))
        assert not obs["obs"].any() and reward == 0.0 and not done
    obs, reward, done, _ = env.step(_onehot(0, 3))
    assert obs["obs"][-1] == 1.0 and reward == 0.0 and not done  # the query is shown
    answer = cue if answer_right else (cue + 1) % 3
    _, reward, done, _ = env.step(_onehot(answer, 3))
    assert done and reward == (1.0 if answer_right else -1.0)


def test_image_observations_and_registry() -> None:
    env = make_env({"suite": "embedded", "id": "memory", "obs": "image", "delay": 0}, seed=1)
    first = env.reset()["obs"]
    assert first.shape == (3, 16, 16) and first.dtype == np.uint8 and first.any()
    query = env.step(_onehot(0, 2))[0]["obs"]
    assert (query == 255).all()
    assert env.spec.action_kind == "discrete" and env.spec.action_dim == 2


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigError, match="delay"):
        Memory(delay=-1)
    with pytest.raises(ConfigError, match="cues"):
        Memory(cues=1)
    with pytest.raises(ConfigError, match="obs"):
        Memory(obs="pixels")


def test_repeat_mode_scores_every_step_against_the_symbol_delay_steps_ago() -> None:
    env = Memory(cues=3, delay=2, mode="repeat", length=7, seed=3)
    shown = [env.reset()["obs"]]
    rewards, dones = [], []
    for t in range(7):
        assert shown[t][-1] == (1.0 if t >= 2 else 0.0)  # the flag marks the scored steps
        target = int(np.argmax(shown[t - 2][:3])) if t >= 2 else 0
        answer = target if t % 2 == 0 else (target + 1) % 3
        obs, reward, done, _ = env.step(_onehot(answer, 3))
        shown.append(obs["obs"])
        rewards.append(reward)
        dones.append(done)
    assert rewards == [0.0, 0.0, 1.0, -1.0, 1.0, -1.0, 1.0]
    assert dones == [False] * 6 + [True]
    assert all(o[:3].sum() == 1.0 for o in shown)  # a symbol every step
    symbols = {int(np.argmax(o[:3])) for _ in range(5) for o in [env.reset()["obs"]]}
    assert len(symbols) > 1


def test_repeat_mode_through_the_registry_and_bad_lengths() -> None:
    env = make_env(
        {"suite": "embedded", "id": "memory", "mode": "repeat", "delay": 0, "length": 3}, seed=0
    )
    obs = env.reset()["obs"]
    symbol = int(np.argmax(obs[:2]))
    _, reward, done, _ = env.step(_onehot(symbol, 2))
    assert reward == 1.0 and not done and obs[-1] == 1.0
    with pytest.raises(ConfigError, match="length"):
        Memory(mode="repeat", delay=4, length=4)
    with pytest.raises(ConfigError, match="mode"):
        Memory(mode="copy")


@pytest.mark.parametrize(("mode", "delays"), [("repeat", (0, 1, 2)), ("cycle", (2,))])
def test_random_play_through_the_collector_is_at_chance(mode: str, delays: tuple) -> None:
    # the env's symbols and the collector's random actions come from the same seed; they must
    # not be the same stream (random play scored right at every step)
    from worldflux.data.replay import Replay
    from worldflux.envs.registry import make_vector_env
    from worldflux.training.collector import Collector

    cfg = {"suite": "embedded", "id": "memory", "mode": mode, "num_envs": 1}
    for delay in delays:
        envs = make_vector_env({**cfg, "delay": delay, "length": 16}, seed=0)
        replay = Replay(envs.spec, 1100, envs.num_envs, seed=0)
        collector = Collector(envs, replay, seed=0)
        for _ in range(1024):
            collector.step(None)
        reward = np.asarray(replay.sample(1, 1000)["reward"])
        scored = reward[reward != 0]
        assert len(scored) > 800 and abs(scored.mean()) < 0.15, (delay, scored.mean())


def test_cycle_mode_repeats_a_random_cycle_and_scores_like_repeat() -> None:
    env = Memory(cues=8, delay=3, mode="cycle", length=13, seed=5)
    shown = [int(np.argmax(env.reset()["obs"][:8]))]
    rewards = []
    for t in range(13):
        target = shown[t - 3] if t >= 3 else 0
        answer = target if t % 3 else (target + 1) % 8
        obs, reward, done, _ = env.step(_onehot(answer, 8))
        shown.append(int(np.argmax(obs["obs"][:8])))
        rewards.append(reward)
    assert shown == (shown[:4] * 4)[:14]  # period delay + 1: the next symbol is the one to name
    assert rewards == [0.0] * 3 + [1.0 if t % 3 else -1.0 for t in range(3, 13)]
    assert done
    firsts = {int(np.argmax(env.reset()["obs"][:8])) for _ in range(20)}
    assert len(firsts) > 1  # a fresh cycle every episode
    with pytest.raises(ConfigError, match="length"):
        Memory(mode="cycle", delay=4, length=3)
