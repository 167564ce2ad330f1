"""The planner config group: files, command line, component_overrides, both families."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
import yaml

from worldflux import create_world_model
from worldflux.errors import ComponentError
from worldflux.planning import CEMPlanner, GradientPlanner, MPPIPlanner, Planner, build_planner

CONF = Path(__file__).resolve().parents[2] / "conf"
FILES = sorted((CONF / "planner").glob("*.yaml"))
CLASSES = {"mppi": MPPIPlanner, "cem": CEMPlanner, "gradient": GradientPlanner}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_each_file_spells_out_every_constructor_argument(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("# @package model.planner")
    node = yaml.safe_load(text)
    cls = CLASSES[path.stem]
    args = set(inspect.signature(cls.__init__).parameters) - {"self", "action_dim"}
    assert set(node) - {"_target_"} == args
    planner = build_planner(node, action_dim=3)
    assert isinstance(planner, cls) and isinstance(planner, Planner) and planner.action_dim == 3


def test_planner_on_the_command_line_sets_the_model_node() -> None:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONF), version_base=None):
        cfg = compose("train", overrides=["experiment=quickstart", "planner=cem"])
        assert cfg.model.family == "tdmpc2"
        assert cfg.model.planner._target_ == "worldflux.planning.cem.CEMPlanner"
        assert compose("train", overrides=["experiment=quickstart"]).model.planner is None
        cfg = compose("train", overrides=["model=dreamer/ci", "planner=mppi"])
        assert cfg.model.planner._target_ == "worldflux.planning.mppi.MPPIPlanner"


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_component_overrides_choose_the_tdmpc2_planner(name: str) -> None:
    small = {"planner.iterations": 2, "planner.num_samples": 32}
    if name != "gradient":
        small["planner.num_elites"] = 4
    model = create_world_model("tdmpc2:ci", component_overrides={"planner": name}, **small)
    assert type(model.planner) is CLASSES[name] and model.planner.num_samples == 32
    action, state = model.act(torch.randn(2, 24))
    assert action.shape == (2, 6) and action.abs().max() <= 1
    assert state["prev_mean"].shape == (2, model.planner.horizon, 6)


def test_tdmpc2_defaults_to_its_own_mppi_and_mpc_false_uses_the_policy() -> None:
    model = create_world_model("tdmpc2:ci")
    assert type(model.planner) is MPPIPlanner and model.planner.num_samples == 32
    policy = create_world_model("tdmpc2:ci", mpc=False, component_overrides={"planner": "cem"})
    action, state = policy.act(torch.randn(2, 24), "untouched")
    assert action.shape == (2, 6) and state == "untouched"


def test_unknown_planner_ids_are_refused_with_the_valid_ones() -> None:
    with pytest.raises(ComponentError, match=r"valid ids: \['cem', 'gradient', 'mppi'\]"):
        create_world_model("tdmpc2:ci", component_overrides={"planner": "cme"})


def test_a_config_object_takes_a_planner_override_too() -> None:
    from worldflux import get_config

    model = create_world_model(get_config("tdmpc2:ci"), component_overrides={"planner": "cem"})
    assert type(model.planner) is CEMPlanner and model.config.planner["num_samples"] == 512


def test_dreamer_acts_with_its_actor_unless_a_planner_is_chosen() -> None:
    obs = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    actor = create_world_model("dreamer:ci")
    assert actor.planner is None
    _, state = actor.act(obs)
    assert "plan_mean" not in state
    for name in ("mppi", "cem"):
        torch.manual_seed(0)
        small = {"planner.iterations": 2, "planner.num_samples": 32, "planner.num_elites": 4}
        model = create_world_model("dreamer:ci", component_overrides={"planner": name}, **small)
        action, state = model.act(obs)
        action, state = model.act(obs, state, first=torch.tensor([False, True]))
        assert torch.all(action.sum(-1) == 1) and set(action.unique().tolist()) <= {0.0, 1.0}
        assert state["plan_mean"].shape == (2, model.planner.horizon, 6)


def test_dreamer_planning_methods_follow_the_rssm_and_heads() -> None:
    from worldflux.models.dreamerv3.losses import features

    torch.manual_seed(0)
    model = create_world_model("dreamer:ci", action_dim=3, action_kind="discrete")
    state = model.initial_state(4)
    z = features(state)
    action = torch.tensor([[1.0, -1, -1], [-1, 1, -1], [-1, -1, 1], [0.2, 0.9, -0.3]])
    onehot = torch.nn.functional.one_hot(action.argmax(-1), 3).float()
    nxt = model.dynamics.img_step(state, onehot, sample=False)
    torch.testing.assert_close(model.plan_next(z, action, None), features(nxt))
    expected_reward = model.reward_head.pred(model.reward_head(features(nxt)))
    torch.testing.assert_close(model.plan_reward(z, action, None), expected_reward)
    assert model.plan_value(z, action, None).shape == (4,)
    assert model.plan_termination(z, None).shape == (4,)
    assert model.plan_policy(z, None).shape == (4, 3)


def test_dreamer_plans_toward_a_goal_and_the_planner_survives_save_load(tmp_path: Path) -> None:
    obs = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    small = {"planner.iterations": 2, "planner.num_samples": 16, "planner.objective": "goal"}
    model = create_world_model("dreamer:ci", component_overrides={"planner": "gradient"}, **small)
    action, _ = model.act(obs, goal=obs)
    assert torch.all(action.sum(-1) == 1)
    model.save_pretrained(tmp_path / "export")
    loaded = create_world_model(str(tmp_path / "export"))
    assert type(loaded.planner) is GradientPlanner and loaded.planner.objective == "goal"
