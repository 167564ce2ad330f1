"""Released DIAMOND agents load through ``weights=``: the reference's layout, the action count, errors.

The reference layout is eloialonso/diamond @ 5bcd159 ``Agent.state_dict()``: what its trainer
saves and what the released ``atari_100k/models/<Game>.pt`` hold. ``reference_state_dict_shapes
.json`` lists its keys and shapes at the released size (``config/agent/default.yaml``, 64x64x3
frames, 4 actions), written by the reference code itself, so the mapping is checked against the
reference's own names.

With ``WORLDFLUX_DIAMOND_REF=<checkout>`` (and ``WORLDFLUX_DIAMOND_PYTHON``, a Python that imports
it, default this one), a slow test runs ``scripts/compare_diffusion_official.py``: the reference
agent's own saved file loads through ``create_world_model("diffusion:base", weights=...)`` and
every output, loss and gradient is compared with the reference code on those weights.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from worldflux import create_world_model, get_config
from worldflux.errors import ModelFileError
from worldflux.models.diffusion.module import Diffusion
from worldflux.weights import check_fit

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
#: the reference keys whose first dimension is the action count
ACTION_ROWS = (
    "denoiser.inner_model.act_emb.0.weight",
    "rew_end_model.act_emb.weight",
    "actor_critic.actor_linear.weight",
    "actor_critic.actor_linear.bias",
)


def reference_meta_state(actions: int) -> dict[str, torch.Tensor]:
    """The reference agent's state dict at the released size as meta tensors (shapes only)."""
    shapes = json.loads((HERE / "reference_state_dict_shapes.json").read_text())["shapes"]
    return {
        k: torch.empty([actions, *v[1:]] if k in ACTION_ROWS else v, device="meta")
        for k, v in shapes.items()
    }


@pytest.mark.parametrize("actions", [18])  # the file's is 4; 18 changes every action-sized key
def test_the_reference_layout_maps_onto_the_base_preset(actions: int, tmp_path: Path) -> None:
    # a compiled denoiser's keys carry _orig_mod. (the loader drops it)
    state = {
        k.replace("denoiser.", "denoiser._orig_mod.", 1): v
        for k, v in reference_meta_state(actions).items()
    }
    assert Diffusion.reference_overrides(state) == {"action_dim": actions}
    model = create_world_model("diffusion:base", device="meta", action_dim=actions)
    mapped = Diffusion.from_reference_state(state, model.config)
    check_fit(model, mapped, tmp_path / "Game.pt")  # every parameter with its shape, nothing else
    assert len(mapped) == len(state)


def _released_file(path: Path, actions: int = 6, compiled: bool = True) -> tuple[Path, Diffusion]:
    """A ``diffusion:ci``-sized agent saved as the reference saves it (``Agent.state_dict()``,
    the denoiser compiled when ``compiled``); returns the file and the source model."""
    torch.manual_seed(0)
    source = create_world_model("diffusion:ci", action_dim=actions)
    with torch.no_grad():
        for p in source.parameters():  # the zero-initialised layers would hide a bad mapping
            p.add_(torch.randn_like(p) * 0.05)
    state = {
        (k.replace("denoiser.", "denoiser._orig_mod.", 1) if compiled else k): v
        for k, v in source.state_dict().items()
    }
    torch.save(state, path)
    return path, source


def test_a_released_agent_loads_through_weights(tmp_path: Path) -> None:
    path, source = _released_file(tmp_path / "Breakout.pt", actions=6)
    model = create_world_model("diffusion:ci", weights=path)
    assert model.config.action_dim == 6  # read from the file
    ours = model.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(ours[key], value), key
    model.eval(), source.eval()
    obs = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    torch.manual_seed(1)
    a, _ = source.act(obs, eval_mode=True)
    torch.manual_seed(1)
    b, _ = model.act(obs, eval_mode=True)
    assert torch.equal(a, b)
    # the config field (model.weights=...): the spaces are read when the model is built
    from_config = create_world_model(get_config("diffusion:ci", weights=str(path)))
    assert from_config.config.action_dim == 6
    assert torch.equal(
        from_config.state_dict()["actor_critic.actor_linear.weight"],
        source.state_dict()["actor_critic.actor_linear.weight"],
    )


def test_a_file_for_other_actions_names_the_keys(tmp_path: Path) -> None:
    path, _ = _released_file(tmp_path / "Pong.pt", actions=6)
    with pytest.raises(ModelFileError, match=r"actor_critic\.actor_linear\.weight \(6, 16\) vs"):
        create_world_model("diffusion:ci", weights=path, action_dim=4)  # the caller's value wins


def test_missing_and_foreign_keys_are_named(tmp_path: Path) -> None:
    path, _ = _released_file(tmp_path / "Game.pt", compiled=False)
    state = torch.load(path, weights_only=True)
    del state["rew_end_model.head.0.weight"]
    state["world_model.head.weight"] = torch.zeros(2)
    torch.save(state, path)
    with pytest.raises(ModelFileError) as err:
        create_world_model("diffusion:ci", weights=path)
    assert r"missing (1): rew_end_model.head.0.weight" in str(err.value)
    assert "unexpected (1): world_model.head.weight" in str(err.value)


def test_a_file_of_no_known_layout_is_named(tmp_path: Path) -> None:
    torch.save({"encoder.0.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="not a diffusion reference state dict"):
        create_world_model("diffusion:ci", weights=tmp_path / "other.pt")


def test_eval_runs_a_released_agent_file(tmp_path: Path) -> None:
    """``python -m worldflux.eval checkpoint=<released .pt> model=diffusion/ci env=...``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from worldflux.catalog import conf_dir
    from worldflux.eval import evaluate

    path, _ = _released_file(tmp_path / "agent.pt", actions=4)
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose(
            "eval",
            overrides=[f"checkpoint={path}", "model=diffusion/ci", "env=dummy/discrete_image",
                       "episodes=1", "video=false"],
        )  # fmt: skip
    result = evaluate(cfg, tmp_path)
    assert len(result["returns"]) == 1 and np.isfinite(result["mean"])


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("WORLDFLUX_DIAMOND_REF"),
    reason="WORLDFLUX_DIAMOND_REF=<eloialonso/diamond checkout>",
)
def test_same_outputs_as_the_reference_on_its_saved_weights() -> None:
    python = os.environ.get("WORLDFLUX_DIAMOND_PYTHON", sys.executable)
    script = ROOT / "scripts" / "compare_diffusion_official.py"
    # the checkout's Python must import this worldflux too
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    run = subprocess.run(
        [python, str(script), "--official", os.environ["WORLDFLUX_DIAMOND_REF"]],
        env=env, capture_output=True, text=True, timeout=3000, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    out = run.stdout
    rows = re.findall(r"^\| (.+?) +\| ([-\d.e+]+) \| ([-\d.e+]+) \|$", out, re.M)
    assert len(rows) > 20, out
    for name, diff, scale in rows:
        # counts must match exactly; values to float32 rounding of their magnitude
        exact = "parameters" in name or "actions read" in name or "differ" in name
        limit = 0 if exact else 1e-4 * max(1.0, float(scale))
        assert float(diff) <= limit, f"{name}: {diff} (magnitude {scale})"
