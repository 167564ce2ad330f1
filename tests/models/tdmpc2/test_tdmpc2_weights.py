"""Released TD-MPC2 agents load into the presets: official key layouts, spaces, errors.

The state dicts are written here in the official layout (nicklashansen/tdmpc2 @ e9f5932,
``TDMPC2.save``: ``{"model": WorldModel.state_dict()}``), built from the official architecture
(``common/layers.py`` ``mlp``/``enc``/``NormedLinear``, ``common/world_model.py``), not from our
model, with random values; a loaded model must hold each official tensor at its mapped place and
plan. ``scripts/compare_tdmpc2_official.py`` runs the same loading on the official code's own
saved model and compares every output.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from worldflux import create_world_model, get_config
from worldflux.errors import ModelFileError

#: MODEL_SIZE of the official ``common/__init__.py`` (enc_dim, mlp_dim, latent_dim, enc layers, Qs)
SIZES = {
    "1m": (256, 384, 128, 2, 2),
    "5m": (256, 512, 512, 2, 5),
    "19m": (1024, 1024, 768, 3, 5),
    "48m": (1792, 1792, 768, 4, 5),
    "317m": (4096, 4096, 1376, 5, 8),
}
BINS = 101


def _normed(out: dict, prefix: str, i: int, d_in: int, d_out: int, g: torch.Generator) -> None:
    out[f"{prefix}{i}.weight"] = torch.randn(d_out, d_in, generator=g) * 0.05
    out[f"{prefix}{i}.bias"] = torch.randn(d_out, generator=g) * 0.05
    out[f"{prefix}{i}.ln.weight"] = 1 + torch.randn(d_out, generator=g) * 0.05
    out[f"{prefix}{i}.ln.bias"] = torch.randn(d_out, generator=g) * 0.05


def _mlp(out: dict, prefix: str, dims: list[int], last_normed: bool, g: torch.Generator) -> None:
    """The official ``mlp(in, hidden, out, act)``: NormedLinear layers, the last one plain
    ``nn.Linear`` unless it has an activation (SimNorm)."""
    for i in range(len(dims) - 2):
        _normed(out, prefix, i, dims[i], dims[i + 1], g)
    i = len(dims) - 2
    if last_normed:
        _normed(out, prefix, i, dims[-2], dims[-1], g)
    else:
        out[f"{prefix}{i}.weight"] = torch.randn(dims[-1], dims[-2], generator=g) * 0.05
        out[f"{prefix}{i}.bias"] = torch.randn(dims[-1], generator=g) * 0.05


def official_state(
    size: str,
    obs: int = 24,
    act: int = 6,
    *,
    tasks: int = 0,
    task_dim: int = 96,
    episodic: bool = False,
    old_layout: bool = False,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """An official ``WorldModel.state_dict()`` for ``size`` (random values)."""
    enc, mlp, lat, n_enc, n_q = SIZES[size]
    g = torch.Generator().manual_seed(seed)
    t = task_dim if tasks else 0
    out: dict[str, torch.Tensor] = {}
    if tasks:
        out["_task_emb.weight"] = torch.randn(tasks, task_dim, generator=g)
        masks = torch.zeros(tasks, act)
        for i in range(tasks):
            masks[i, : 1 + i % act] = 1
        out["_action_masks"] = masks
    _mlp(out, "_encoder.state.", [obs + t, *[enc] * max(n_enc - 1, 1), lat], True, g)
    _mlp(out, "_dynamics.", [lat + act + t, mlp, mlp, lat], True, g)
    _mlp(out, "_reward.", [lat + act + t, mlp, mlp, BINS], False, g)
    if episodic:
        _mlp(out, "_termination.", [lat + t, mlp, mlp, 1], False, g)
    _mlp(out, "_pi.", [lat + t, mlp, mlp, 2 * act], False, g)
    qs: list[dict[str, torch.Tensor]] = []
    for _ in range(n_q):
        q: dict[str, torch.Tensor] = {}
        _mlp(q, "", [lat + act + t, mlp, mlp, BINS], False, g)
        qs.append(q)
    stacked = {k: torch.stack([q[k] for q in qs]) for k in qs[0]}
    target = {k: v + 0.01 for k, v in stacked.items()}
    if old_layout:  # _Qs.params.{4 * layer + [weight, bias, ln.weight, ln.bias]}
        order = ("weight", "bias", "ln.weight", "ln.bias")
        for key in stacked:
            layer, name = key.split(".", 1)
            n = 4 * int(layer) + order.index(name)
            out[f"_Qs.params.{n}"] = stacked[key]
            out[f"_target_Qs.params.{n}"] = target[key]
    else:
        for key in stacked:
            out[f"_Qs.params.{key}"] = stacked[key]
            out[f"_detach_Qs_params.{key}"] = stacked[key]
            out[f"_target_Qs_params.{key}"] = target[key]
        out["_Qs.module.0.weight"] = torch.empty(mlp, lat + act + t, device="meta")
    out["log_std_min"] = torch.tensor(-10.0)
    out["log_std_dif"] = torch.tensor(12.0)
    return out


def save(state: dict, path: Path) -> Path:
    torch.save({"model": state}, path)
    return path


def check_loaded(model, state: dict, old_layout: bool = False) -> None:
    sd = model.state_dict()
    torch.testing.assert_close(sd["encoder.net.0.weight"], state["_encoder.state.0.weight"])
    torch.testing.assert_close(sd["policy.net.2.bias"], state["_pi.2.bias"])
    q0 = state["_Qs.params.0" if old_layout else "_Qs.params.0.weight"]
    torch.testing.assert_close(sd["q_ensemble.layers.0.weight"], q0)
    ln1 = state["_Qs.params.7" if old_layout else "_Qs.params.1.ln.bias"]
    torch.testing.assert_close(sd["q_ensemble.ln_bias"][1], ln1)
    t2 = state["_target_Qs.params.8" if old_layout else "_target_Qs_params.2.weight"]
    torch.testing.assert_close(sd["target_q.layers.2.weight"], t2)


@pytest.mark.parametrize("size", ["1m", pytest.param("5m", marks=pytest.mark.slow)])
def test_official_single_task_agent_loads_and_plans(size: str, tmp_path: Path) -> None:
    state = official_state(size, obs=17, act=4)
    model = create_world_model(f"tdmpc2:{size}", weights=save(state, tmp_path / "agent.pt"))
    assert list(model.config.obs_shape) == [17] and model.config.action_dim == 4  # from the file
    check_loaded(model, state)
    action, _ = model.act(torch.randn(2, 17), eval_mode=True)
    assert action.shape == (2, 4) and torch.isfinite(action).all()


def test_older_layout_loads_like_the_official_conversion(tmp_path: Path) -> None:
    state = official_state("1m", old_layout=True, episodic=True)
    model = create_world_model("tdmpc2:1m", weights=save(state, tmp_path / "old.pt"))
    assert model.config.episodic
    check_loaded(model, state, old_layout=True)
    torch.testing.assert_close(
        model.state_dict()["termination.net.2.weight"], state["_termination.2.weight"]
    )


def test_multitask_agent_reads_tasks_and_action_sizes(tmp_path: Path) -> None:
    state = official_state("1m", obs=39, act=6, tasks=5, task_dim=96)
    model = create_world_model("tdmpc2:1m", weights=save(state, tmp_path / "mt.pt"))
    c = model.config
    assert (c.num_tasks, c.task_dim, c.task_action_dims) == (5, 96, [1, 2, 3, 4, 5])
    torch.testing.assert_close(model.state_dict()["task_emb.weight"], state["_task_emb.weight"])
    torch.testing.assert_close(model.action_masks, state["_action_masks"])
    action, _ = model.act(torch.randn(2, 39), task=torch.tensor([0, 4]), eval_mode=True)
    assert action.shape == (2, 6)
    assert (action[0, 1:] == 0).all()  # task 0 uses one action dimension


@pytest.mark.slow
@pytest.mark.parametrize("size", ["19m", "48m", "317m"])
def test_large_official_agents_load_and_plan(size: str, tmp_path: Path) -> None:
    state = official_state(size)
    path = save(state, tmp_path / "agent.pt")
    model = create_world_model(f"tdmpc2:{size}", weights=path, num_samples=64, num_elites=8)
    check_loaded(model, state)
    action, _ = model.act(torch.randn(1, 24), eval_mode=True)
    assert action.shape == (1, 6)


def test_config_field_loads_the_same_file(tmp_path: Path) -> None:
    state = official_state("1m")
    path = save(state, tmp_path / "agent.pt")
    config = get_config("tdmpc2:1m", weights=str(path))
    check_loaded(create_world_model(config), state)


def test_own_state_dict_files_load_too(tmp_path: Path) -> None:
    source = create_world_model("tdmpc2:ci")
    torch.save(source.state_dict(), tmp_path / "ours.pt")
    loaded = create_world_model("tdmpc2:ci", weights=tmp_path / "ours.pt")
    for key, value in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)


def test_a_file_of_another_size_names_the_mismatched_keys(tmp_path: Path) -> None:
    path = save(official_state("1m"), tmp_path / "agent.pt")
    with pytest.raises(
        ModelFileError,
        match=r"shape mismatch .*dynamics\.net\.0\.weight \(384, 134\) vs \(512, 518\)",
    ):
        create_world_model("tdmpc2:5m", weights=path)


def test_missing_tensors_are_named(tmp_path: Path) -> None:
    state = official_state("1m")
    del state["_dynamics.1.ln.weight"]
    with pytest.raises(ModelFileError, match=r"missing \(1\): dynamics\.net\.1\.ln\.weight"):
        create_world_model("tdmpc2:1m", weights=save(state, tmp_path / "agent.pt"))


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    state = official_state("1m")
    state["_critic.0.weight"] = torch.zeros(1)
    with pytest.raises(ModelFileError, match="no mapping for official key '_critic.0.weight'"):
        create_world_model("tdmpc2:1m", weights=save(state, tmp_path / "agent.pt"))


class _Code:
    def __reduce__(self):  # noqa: ANN204 - a pickle that would run code
        return (print, ("pwned",))


def test_files_that_need_pickled_code_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": {"x": torch.zeros(1)}, "extra": _Code()}, path, pickle_module=pickle)
    with pytest.raises(ModelFileError, match=r"weights_only=True"):
        create_world_model("tdmpc2:ci", weights=path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="weights file not found"):
        create_world_model("tdmpc2:ci", weights=tmp_path / "nope.pt")


def _compose_eval(*overrides: str):  # noqa: ANN202
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from worldflux.catalog import conf_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        return compose("eval", overrides=list(overrides))


def test_eval_runs_a_released_agent_file(tmp_path: Path) -> None:
    """``python -m worldflux.eval checkpoint=<official .pt> model=<preset> env=<env>``."""
    from worldflux.eval import evaluate

    path = save(official_state("1m", obs=3, act=1), tmp_path / "agent.pt")
    cfg = _compose_eval(
        f"checkpoint={path}",
        "model=tdmpc2/1m",
        "model.num_samples=64",
        "model.num_elites=8",
        "model.iterations=1",  # planning at full strength is not what this tests (keeps it fast)
        "env=catch_vector",
        "episodes=1",
        "video=false",
    )
    result = evaluate(cfg, tmp_path)
    assert len(result["returns"]) == 1 and np.isfinite(result["mean"])
    assert (tmp_path / "returns.json").is_file()


def test_eval_with_a_model_needs_an_env(tmp_path: Path) -> None:
    from worldflux.errors import ConfigError
    from worldflux.eval import evaluate

    path = save(official_state("1m", obs=3, act=1), tmp_path / "agent.pt")
    cfg = _compose_eval(f"checkpoint={path}", "model=tdmpc2/1m")
    with pytest.raises(ConfigError, match="needs env=<environment>"):
        evaluate(cfg, tmp_path)
