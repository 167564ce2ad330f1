"""The POPGym adapter (worldflux.envs.popgym, extra worldflux[popgym])."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from worldflux.envs.registry import make_env
from worldflux.errors import ConfigError

POPGYM = {"suite": "popgym", "id": "RepeatPreviousEasy"}


def test_a_missing_popgym_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "popgym", None)  # import popgym now raises ImportError
    monkeypatch.setitem(sys.modules, "popgym.envs", None)
    with pytest.raises(ImportError, match=r"pip install 'worldflux\[popgym\]'") as err:
        make_env(POPGYM)
    assert "\n" not in str(err.value)


def test_repeat_previous_easy_is_solved_by_remembering_4_observations() -> None:
    pytest.importorskip("popgym")
    env = make_env(POPGYM, seed=3)
    assert env.spec.action_kind == "discrete" and env.spec.action_dim == 4
    assert env.spec.obs["obs"].shape == (4,)
    seen = [env.reset()["obs"]]
    total, steps, done = 0.0, 0, False
    while not done:
        assert seen[-1].sum() == 1.0 and set(np.unique(seen[-1])) == {0.0, 1.0}  # one-hot suit
        answer = seen[-4] if len(seen) >= 4 else np.eye(4)[0]
        obs, reward, terminated, truncated = env.step(answer)
        seen.append(obs["obs"])
        total, steps, done = total + reward, steps + 1, terminated or truncated
    assert steps == 51 and total == pytest.approx(1.0)  # every scored answer right


def test_unknown_tasks_get_close_matches() -> None:
    pytest.importorskip("popgym")
    with pytest.raises(ConfigError, match="Did you mean 'RepeatPreviousEasy'"):
        make_env({"suite": "popgym", "id": "RepeatPrevousEasy"})


def test_multidiscrete_actions_become_one_discrete_space() -> None:
    pytest.importorskip("popgym")
    env = make_env({"suite": "popgym", "id": "popgym-BattleshipEasy-v0"}, seed=0)
    nvec = env.env.action_space.nvec
    assert env.spec.action_dim == int(np.prod(nvec))
    index = 1 * nvec[1] + 3  # component 0 = 1, component 1 = 3 (last component fastest)
    assert env._convert(np.eye(env.spec.action_dim)[index]).tolist() == [1, 3]
