"""``python -m worldflux.compare``: the command on two ci families, honest baselines, bad input.

The default suite runs the command once on two ci families at a tiny budget; the run over every
family's ci preset (``+compare=ci``, what docs/compare.md quotes) is ``slow``.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from torch import Tensor, nn

from worldflux import create_world_model
from worldflux.compare import closed_loop, open_loop
from worldflux.compare.app import run_section
from worldflux.compare.data import load_data
from worldflux.compare.models import Entry, resolve
from worldflux.core.config import WorldModelConfig
from worldflux.core.model import WorldModel
from worldflux.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CATCH = {
    "suite": "embedded",
    "id": "catch",
    "obs": "image",
    "rows": 5,
    "cols": 4,
    "balls": 1,
    "size": 16,
}
PENDULUM = {
    "suite": "embedded",
    "id": "physics",
    "system": "torque_pendulum",
    "obs": "vector",
    "dt": 0.05,
    "substeps": 5,
    "max_steps": 8,
    "init": "random",
}


def _run(args: list[str], out: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "worldflux.compare", *args, f"hydra.run.dir={out}"]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_command_on_two_ci_families(tmp_path: Path) -> None:
    env = ",".join(f"{k}:{v}" for k, v in PENDULUM.items())
    run = _run(
        [
            "models=[physics:ci,tdmpc2:ci]",
            "~env",
            f"+env={{{env}}}",
            "threads=1",
            "train.updates=2",
            "data.train_episodes=2",
            "data.eval_episodes=1",
            "open_loop.context=2",
            "open_loop.horizon=3",
            "open_loop.windows=4",
            "closed_loop.episodes=2",
            "closed_loop.budgets=[4]",
            "closed_loop.planner_args={horizon:2,iterations:1}",
            "cost.updates=1",
        ],
        tmp_path,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    md = (tmp_path / "compare.md").read_text()
    for text in (
        "physics:ci",
        "tdmpc2:ci",
        "copy-last frame",
        "mean frame",
        "dataset hash",
        "seed: 0",
    ):
        assert text in md, text
    assert "mppi (return)" in md and "own agent" in md  # both are return planners with act()
    rows = list(csv.DictReader((tmp_path / "compare.csv").open()))
    models = {r["model"] for r in rows if r["table"] == "cost"}
    assert models == {"physics:ci", "tdmpc2:ci"}
    params = {r["model"]: int(r["value"]) for r in rows if r["metric"] == "parameters"}
    assert (
        params["physics:ci"]
        == create_world_model(
            "physics:ci", obs_shape=(2,), action_dim=1, action_spec={"kind": "continuous", "dim": 1}
        ).num_parameters()
    )
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert (
        "comparison-open_loop-latent_mse.png" in pngs
        and "comparison-closed_loop-return.png" in pngs
    )
    assert "Plots (also TensorBoard images)" in md


class CopyLast(WorldModel):
    """Predicts that the last observed frame stays: it must score exactly as that baseline."""

    capabilities = frozenset({"observe", "rollout", "decode"})

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.unused = nn.Linear(1, 1)

    def observe(self, obs: Tensor, action: Tensor, first: Tensor, state: Any = None) -> Any:
        return obs, obs[:, -1]

    def rollout(self, state: Tensor, actions: Tensor) -> Tensor:
        return state.unsqueeze(1).expand(-1, actions.shape[1], *state.shape[1:])

    def decode(self, state: Tensor) -> dict[str, Tensor]:
        return {"obs": state.float() / 255.0}


def _copy_last() -> CopyLast:
    config = WorldModelConfig.from_dict(
        {
            "_target_": f"{__name__}.CopyLast",
            "family": "copylast",
            "obs_shape": [3, 16, 16],
            "action_dim": 3,
            "action_kind": "discrete",
        }
    )
    return CopyLast(config)


def _catch_data() -> Any:
    return load_data(CATCH, None, train_episodes=2, eval_episodes=2, seed=3)


def test_a_model_that_copies_the_last_frame_scores_as_the_baseline() -> None:
    data = _catch_data()
    entry = resolve(("copy", _copy_last()), data, "cpu")
    rows = open_loop.evaluate([entry], data, context=2, horizon=3, count=8)
    by_name = {r.name: r for r in rows}
    assert by_name["copy"].metrics == by_name["copy-last frame"].metrics
    assert by_name["copy"].metrics != by_name["mean frame"].metrics
    assert by_name["copy-last frame"].metrics["ssim"][0] < 1.0  # the frames do change


def test_a_loaded_model_with_other_observations_is_refused(tmp_path: Path) -> None:
    model = create_world_model("physics:ci")
    model.save_pretrained(tmp_path / "pendulum")
    with pytest.raises(ConfigError, match=r"(?s)pendulum.*expects observations.*\(3, 16, 16\)"):
        resolve(str(tmp_path / "pendulum"), _catch_data(), "cpu")


def test_a_planner_that_cannot_drive_the_model_is_an_error_with_drive_all() -> None:
    data = _catch_data()
    entry = Entry("copy", _copy_last(), "given")
    with pytest.raises(ConfigError, match=r"cannot drive model 'copy'.*capability 'plan'"):
        closed_loop.evaluate(
            [entry],
            data,
            episodes=1,
            seed=0,
            planner="mppi",
            planner_args={},
            budgets=[4],
            drive="all",
        )
    rows, notes = closed_loop.evaluate(
        [entry], data, episodes=1, seed=0, planner="mppi", planner_args={}, budgets=[4]
    )
    assert [r.name for r in rows] == ["random"] and "cannot drive model 'copy'" in notes[0]


def test_an_empty_dataset_is_an_error(tmp_path: Path) -> None:
    from worldflux.data.episodes import write_manifest, write_spec
    from worldflux.envs.registry import env_spec

    write_spec(tmp_path, env_spec(CATCH), {"env": CATCH})
    write_manifest(tmp_path, {"env": CATCH, "episodes": [], "sessions": []})
    with pytest.raises(
        ConfigError, match=r"data.dataset=.* is empty: it holds no finished episodes"
    ):
        load_data(None, str(tmp_path), train_episodes=1, eval_episodes=1, seed=0)


def test_no_models_or_no_data_is_an_error() -> None:
    with pytest.raises(ConfigError, match="needs data"):
        load_data(None, None, 1, 1, 0)
    cfg: dict[str, Any] = {
        "seed": 0,
        "device": "cpu",
        "data": {"train_episodes": 1, "eval_episodes": 1},
        "train": {"updates": 0},
        "open_loop": {},
        "closed_loop": {},
        "cost": {"updates": 0},
    }
    with pytest.raises(ConfigError, match="needs models"):
        run_section("x", [], CATCH, cfg)


@pytest.mark.slow
def test_every_family_ci_preset(tmp_path: Path) -> None:
    run = _run(
        [
            "+compare=ci",
            "threads=1",
            "train.updates=3",
            "data.train_episodes=4",
            "closed_loop.episodes=1",
            "closed_loop.budgets=[8]",
            "open_loop.windows=4",
        ],
        tmp_path,
        timeout=1800,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    md = (tmp_path / "compare.md").read_text()
    from worldflux import catalog

    families = {p for p in catalog.presets() if p.endswith(":ci") and not p.startswith("phasedemo")}
    missing = [p for p in families if f"**{p}**" not in md]
    assert not missing, f"families missing from the report: {missing}"


def test_a_dataset_is_split_and_hashed_like_the_same_episodes_from_the_env(tmp_path: Path) -> None:
    from worldflux.data.episodes import write_episode, write_spec
    from worldflux.envs.registry import env_spec

    played = load_data(CATCH, None, train_episodes=2, eval_episodes=1, seed=5)
    assert played.digest == load_data(CATCH, None, 2, 1, seed=5).digest
    assert played.digest != load_data(CATCH, None, 2, 1, seed=6).digest
    write_spec(tmp_path, env_spec(CATCH), {"env": CATCH})
    for i, ep in enumerate([*played.train, *played.held_out]):
        write_episode(tmp_path, i, ep)
    stored = load_data(None, str(tmp_path), train_episodes=0, eval_episodes=1, seed=0)
    assert stored.digest == played.digest and stored.env == CATCH
    assert len(stored.train) == 2 and len(stored.held_out) == 1
    with pytest.raises(ConfigError, match="needs at least one more to train on"):
        load_data(None, str(tmp_path), train_episodes=0, eval_episodes=3, seed=0)


def test_a_saved_model_is_compared_as_is_and_timed_on_a_copy(tmp_path: Path) -> None:
    data = load_data(PENDULUM, None, train_episodes=1, eval_episodes=1, seed=0)
    model = create_world_model("physics:ci", **data.spec.model_kwargs())
    model.save_pretrained(tmp_path / "saved")
    cfg: dict[str, Any] = {
        "seed": 0,
        "device": "cpu",
        "data": {"train_episodes": 1, "eval_episodes": 1},
        "train": {"updates": 3},
        "open_loop": {"context": 2, "horizon": 2, "windows": 2},
        "closed_loop": {"enabled": False},
        "cost": {"updates": 1},
    }
    section = run_section("saved", [str(tmp_path / "saved")], PENDULUM, cfg)
    (cost,) = section.costs
    # timed for cost.updates on a copy; train.updates applies to presets only
    assert cost.updates == 1 and cost.updates_per_second and cost.parameters == 154
    assert any(f.name == str(tmp_path / "saved") and not f.baseline for f in section.fidelity)
