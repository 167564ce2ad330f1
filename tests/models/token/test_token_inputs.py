"""IRIS (family ``token``): bad inputs, LPIPS loading and the reference checkpoint loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from worldflux import create_world_model
from worldflux.errors import ConfigError, ModelFileError, ShapeError
from worldflux.models.token.weights import ours_to_official
from worldflux.nn.lpips import LPIPS, load_lpips


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_world_model("token:ci").eval()


def test_wrong_frame_size_is_refused(model) -> None:
    with pytest.raises(ShapeError, match=r"frames must have shape \(B, 3, 16, 16\)"):
        model.encode(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ConfigError, match="obs_shape"):
        create_world_model("token:ci", obs_shape=[3, 18, 18])


def test_token_ids_out_of_range_are_refused(model) -> None:
    wm = model.world_model
    tokens = torch.zeros(1, wm.tokens_per_block, dtype=torch.long)
    tokens[0, 0] = model.config.vocab_size
    with pytest.raises(ShapeError, match=r"observation token ids must be in \[0, 31\]"):
        wm(tokens)


def test_action_out_of_range_is_refused(model) -> None:
    tokens = torch.zeros(1, model.world_model.tokens_per_block, dtype=torch.long)
    tokens[0, -1] = model.config.action_dim
    with pytest.raises(ShapeError, match=r"action token ids must be in \[0, 3\]"):
        model.world_model(tokens)
    with pytest.raises(ShapeError, match="action ids must be in"):
        model.rollout(model.encode(torch.zeros(1, 3, 16, 16)), torch.full((1, 2), 7))


def test_context_longer_than_the_model_is_refused(model) -> None:
    wm = model.world_model
    with pytest.raises(ShapeError, match=r"context holds 68 tokens \(4 steps\)"):
        wm(torch.zeros(1, wm.max_tokens + 1, dtype=torch.long))
    obs = torch.zeros(1, 6, 3, 16, 16)
    batch = {"obs": obs, "action": torch.zeros(1, 6, 4), "reward": torch.zeros(1, 6),
             "first": torch.zeros(1, 6, dtype=torch.bool),
             "terminal": torch.zeros(1, 6, dtype=torch.bool)}  # fmt: skip
    with pytest.raises(ShapeError, match="exceeds the context of max_blocks=4"):
        model.world_model_loss(batch)


def test_rollout_with_the_cache(model) -> None:
    start = model.encode(torch.zeros(2, 3, 16, 16))
    actions = torch.nn.functional.one_hot(torch.tensor([[0, 1, 2, 3, 0]] * 2), 4).float()
    out = model.rollout(start, actions)  # longer than the context: the cache is refreshed
    assert out.states.shape == (2, 5, 16) and out.rewards.shape == (2, 5)
    assert set(out.rewards.unique().tolist()) <= {-1.0, 0.0, 1.0}


def _lpips_files(tmp: Path) -> tuple[Path, Path, LPIPS]:
    torch.manual_seed(3)
    ref = LPIPS()
    for p in ref.parameters():
        p.data.normal_(0, 0.05)
    heads = {f"lin{i}.model.1.weight": lin.weight.detach() for i, lin in enumerate(ref.lins)}
    vgg = {k: v for k, v in ref.state_dict().items() if k.startswith("features.")}
    vgg["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision's file has more than features
    torch.save(heads, tmp / "vgg.pth")
    (tmp / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(vgg, tmp / "hub" / "checkpoints" / "vgg16-397923af.pth")
    return tmp / "vgg.pth", tmp / "hub", ref


def test_lpips_loads_heads_and_the_torchvision_cache(tmp_path: Path, monkeypatch) -> None:
    heads, hub, ref = _lpips_files(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    net, why = load_lpips(heads)
    assert net is not None and "loaded" in why
    x, y = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.allclose(net(x, y), ref.eval()(x, y))
    assert net(x, x).abs().max() == 0
    (hub / "checkpoints" / "vgg16-397923af.pth").unlink()
    net, why = load_lpips(heads)
    assert net is None and "no VGG16 weights" in why
    with pytest.raises(ModelFileError, match="missing"):
        load_lpips(tmp_path / "nope.pth")


def test_missing_lpips_trains_without_the_term(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    m = create_world_model("token:ci", perceptual_weight=1.0)
    batch = {"obs": torch.zeros(1, 1, 3, 16, 16, dtype=torch.uint8)}
    with caplog.at_level("WARNING"):
        out = m.tokenizer_loss(batch)
        m.tokenizer_loss(batch)
    assert "perceptual" not in out.components
    assert sum("without the perceptual" in r.message for r in caplog.records) == 1


def _reference_file(model, tmp_path: Path) -> Path:
    """A state dict in eloialonso/iris's ``Agent`` layout, with its extra buffers."""
    state = ours_to_official({k: v.clone() for k, v in model.state_dict().items()})
    wm = model.world_model
    for i in range(len(wm.blocks)):
        state[f"world_model.transformer.blocks.{i}.attn.mask"] = torch.ones(4, 4)
    for head in ("observations", "rewards", "ends"):
        state[f"world_model.head_{head}.indices"] = torch.arange(3)
    state["tokenizer.lpips.lin0.model.1.weight"] = torch.zeros(1, 64, 1, 1)
    path = tmp_path / "Breakout.pt"
    torch.save(state, path)
    return path


def test_reference_checkpoint_loads(model, tmp_path: Path) -> None:
    path = _reference_file(model, tmp_path)
    other = create_world_model("token:ci")
    other.load_official(str(path))
    for (k, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert "world_model.embedder.embedding_tables.1.weight" in torch.load(path, weights_only=True)


def test_reference_checkpoint_errors_name_the_keys(model, tmp_path: Path) -> None:
    path = _reference_file(model, tmp_path)
    state = torch.load(path, weights_only=True)
    del state["actor_critic.conv2.bias"]
    state["world_model.head_rewards.head_module.2.weight"] = torch.zeros(5, 32)
    torch.save(state, path)
    with pytest.raises(ModelFileError) as err:
        model.load_official(str(path))
    assert "actor_critic.convs.1.bias" in str(err.value)
    assert "world_model.head_reward.2.weight: file (5, 32) vs model (3, 32)" in str(err.value)
    model.load_official(str(path), parts=("tokenizer",))  # other parts are not read


def test_lpips_is_not_part_of_the_state_dict() -> None:
    m = create_world_model("token:ci")
    keys = set(m.state_dict())
    m.set_lpips(LPIPS())
    assert set(m.state_dict()) == keys and m.lpips is not None
