"""Released IRIS agents load through ``weights=``: the reference's layout, the action count, errors.

The reference layout is eloialonso/iris @ 24326aa ``Agent.state_dict()``: what its
``src/trainer.py`` saves and what the released ``pretrained_models/<Game>.pt`` hold.
``iris_state_dict_shapes.json`` lists its keys and shapes at the released size
(``config/*/default.yaml``, 64x64x3 frames, 4 actions), written by the reference code itself
(``scripts/compare_token_official.py --official <checkout> --dump-keys <json>``), so the mapping
is checked against the reference's own names, not against our inverse of them.

With ``WORLDFLUX_IRIS_REF=<checkout>`` (and ``WORLDFLUX_IRIS_PYTHON``, a Python that imports it,
default this one), a slow test runs ``scripts/compare_token_official.py``: the reference agent's
own saved file loads through ``create_world_model("token:base", weights=...)`` and every output
and loss is compared with the reference code on those weights.
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

from worldflux import create_world_model
from worldflux.errors import ModelFileError
from worldflux.models.token.module import Token
from worldflux.models.token.weights import ours_to_official
from worldflux.weights import check_fit

HERE = Path(__file__).parent
ROOT = HERE.parents[2]


def reference_meta_state(actions: int = 4) -> dict[str, torch.Tensor]:
    """The reference agent's state dict at the released size as meta tensors (shapes only),
    with ``actions`` rows where the reference stores the action count."""
    shapes = json.loads((HERE / "iris_state_dict_shapes.json").read_text())["shapes"]
    out = {}
    for key, shape in shapes.items():
        if key in ("world_model.embedder.embedding_tables.0.weight",) or key.startswith(
            "actor_critic.actor_linear."
        ):
            shape = [actions, *shape[1:]]
        out[key] = torch.empty(shape, device="meta")
    return out


def test_the_reference_layout_maps_onto_the_base_preset(tmp_path: Path) -> None:
    state = reference_meta_state()
    assert Token.reference_overrides(state) == {"action_dim": 4}
    assert Token.reference_overrides(reference_meta_state(18)) == {"action_dim": 18}
    model = create_world_model("token:base", device="meta")
    mapped = Token.from_reference_state(state, model.config)
    check_fit(model, mapped, tmp_path / "Game.pt")  # every parameter, with its shape, nothing else
    # what is dropped: the LPIPS copy and the buffers we compute (attention masks, head indices)
    dropped = {k for k in state if k.startswith("tokenizer.lpips.")}
    dropped |= {k for k in state if k.endswith((".attn.mask", ".indices"))}
    assert len(mapped) == len(state) - len(dropped)


def _released_file(path: Path, actions: int = 6, seed: int = 0) -> tuple[Path, Token]:
    """A ``token:ci``-sized agent saved in the reference's layout, with the reference's extra
    buffers and LPIPS copy (as ``src/trainer.py`` saves it); returns the file and the source."""
    torch.manual_seed(seed)
    source = create_world_model("token:ci", action_dim=actions)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    state = ours_to_official(source.state_dict())
    for i in range(len(source.world_model.blocks)):
        state[f"world_model.transformer.blocks.{i}.attn.mask"] = torch.tril(torch.ones(8, 8))
    for head in ("observations", "rewards", "ends"):
        state[f"world_model.head_{head}.indices"] = torch.arange(3)
    state["tokenizer.lpips.lin0.model.1.weight"] = torch.zeros(1, 64, 1, 1)
    torch.save(state, path)
    return path, source


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Token]:
    """A released-layout file for 6 actions and the model it was saved from."""
    return _released_file(tmp_path_factory.mktemp("iris") / "Breakout.pt", actions=6)


def test_a_released_agent_loads_through_weights(released: tuple[Path, Token]) -> None:
    path, source = released
    model = create_world_model("token:ci", weights=path)
    assert model.config.action_dim == 6  # read from the file
    ours, theirs = model.state_dict(), source.state_dict()
    for key, value in theirs.items():
        assert torch.equal(ours[key], value), key
    frames = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    model.eval(), source.eval()
    assert torch.equal(model.encode(frames), source.encode(frames))


def test_a_file_for_other_actions_names_the_keys(released: tuple[Path, Token]) -> None:
    path, _ = released
    with pytest.raises(
        ModelFileError, match=r"world_model\.embed_act\.weight \(6, 32\) vs \(4, 32\)"
    ):
        create_world_model("token:ci", weights=path, action_dim=4)  # the caller's value wins


def test_a_file_of_no_known_layout_is_named(tmp_path: Path) -> None:
    torch.save({"encoder.0.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="not a token reference state dict.*eloialonso/iris"):
        create_world_model("token:ci", weights=tmp_path / "other.pt")


def test_disagreeing_action_counts_are_named(released: tuple[Path, Token], tmp_path: Path) -> None:
    state = torch.load(released[0], weights_only=True)
    state["actor_critic.actor_linear.weight"] = torch.zeros(5, 32)
    path = tmp_path / "Bad.pt"
    torch.save(state, path)
    with pytest.raises(ModelFileError, match="action counts stored in the file disagree"):
        create_world_model("token:ci", weights=path)


def test_eval_runs_a_released_agent_file(tmp_path: Path) -> None:
    """``python -m worldflux.eval checkpoint=<released .pt> model=token/ci env=...``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from worldflux.catalog import conf_dir
    from worldflux.eval import evaluate

    path, _ = _released_file(tmp_path / "agent.pt", actions=4)
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose(
            "eval",
            overrides=[f"checkpoint={path}", "model=token/ci", "env=dummy/discrete_image",
                       "episodes=1", "video=false"],
        )  # fmt: skip
    result = evaluate(cfg, tmp_path)
    assert len(result["returns"]) == 1 and np.isfinite(result["mean"])


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("WORLDFLUX_IRIS_REF"), reason="WORLDFLUX_IRIS_REF=<eloialonso/iris checkout>"
)
def test_same_outputs_as_the_reference_on_its_saved_weights() -> None:
    python = os.environ.get("WORLDFLUX_IRIS_PYTHON", sys.executable)
    script = ROOT / "scripts" / "compare_token_official.py"
    # the checkout's Python must import this worldflux too
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    run = subprocess.run(
        [python, str(script), "--official", os.environ["WORLDFLUX_IRIS_REF"]],
        env=env, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    out = run.stdout
    rows = re.findall(r"^\| (.+?) \| ([-\d.e+]+) \| ([-\d.e+]+) \|$", out, re.M)
    assert len(rows) > 20, out
    for name, diff, scale in rows:
        # counts must match exactly; values to float32 rounding of their magnitude
        limit = 0 if "count" in name or "actions read" in name else 1e-4 * max(1.0, float(scale))
        assert float(diff) <= limit, f"{name}: {diff} (magnitude {scale})"
