"""DINO-WM (jepa:dino_wm): reference sizes, DINOv2 loading, the loss, planning and bad input."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from worldflux import create_world_model
from worldflux.errors import ConfigError, ModelFileError, ShapeError
from worldflux.models.jepa.dino_checkpoint import load_checkpoint
from worldflux.models.jepa.dino_networks import FrameCausalViT
from worldflux.nn.dinov2 import DinoV2, load_dinov2
from worldflux.planning.protocol import PlanningError

SMALL = {
    "observation_modalities": {
        "visual": {"kind": "image", "shape": [3, 32, 32]},
        "proprio": {"kind": "vector", "shape": [4]},
    },
    "action_dim": 2,
    "encoder_image_size": 28,  # 2 x 2 DINOv2 patches; the decoder returns 32 x 32
    "predictor.depth": 1,
    "predictor.heads": 2,
    "predictor.dim_head": 8,
    "predictor.mlp_dim": 32,
    "decoder.channel": 8,
    "decoder.n_res_block": 1,
    "decoder.n_res_channel": 4,
    "planner.num_samples": 8,
    "planner.num_elites": 2,
    "planner.iterations": 2,
}


def official_vits14_layout() -> dict[str, tuple[int, ...]]:
    """Keys and shapes of facebookresearch/dinov2's ``dinov2_vits14`` state dict (written out)."""
    d = 384
    keys: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, d),
        "pos_embed": (1, 1370, d),
        "mask_token": (1, d),
        "patch_embed.proj.weight": (d, 3, 14, 14),
        "patch_embed.proj.bias": (d,),
        "norm.weight": (d,),
        "norm.bias": (d,),
    }
    for i in range(12):
        b = f"blocks.{i}."
        keys.update(
            {
                b + "norm1.weight": (d,),
                b + "norm1.bias": (d,),
                b + "attn.qkv.weight": (3 * d, d),
                b + "attn.qkv.bias": (3 * d,),
                b + "attn.proj.weight": (d, d),
                b + "attn.proj.bias": (d,),
                b + "ls1.gamma": (d,),
                b + "norm2.weight": (d,),
                b + "norm2.bias": (d,),
                b + "mlp.fc1.weight": (4 * d, d),
                b + "mlp.fc1.bias": (4 * d,),
                b + "mlp.fc2.weight": (d, 4 * d),
                b + "mlp.fc2.bias": (d,),
                b + "ls2.gamma": (d,),
            }
        )
    return keys


@pytest.fixture(scope="module")
def dino_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=gen) * 0.02 for k, s in official_vits14_layout().items()}
    path = tmp_path_factory.mktemp("dino") / "dinov2_vits14_pretrain.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def model(dino_file: Path):
    torch.manual_seed(0)
    return create_world_model("jepa:dino_wm", dino_weights=str(dino_file), **SMALL)


def _obs(lead: tuple[int, ...], seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "visual": torch.randint(0, 256, (*lead, 3, 32, 32), dtype=torch.uint8, generator=gen),
        "proprio": torch.randn(*lead, 4, generator=gen),
    }


def _batch(t: int = 4) -> dict:
    return {"obs": _obs((2, t)), "action": torch.rand(2, t, 2) * 2 - 1}


def test_pusht_components_match_the_reference_counts() -> None:
    m = create_world_model("jepa:dino_wm", device="meta")

    def count(part: torch.nn.Module) -> int:
        return sum(p.numel() for p in part.parameters())

    assert count(m.predictor) == 20_122_600
    assert count(m.action_encoder) == 110 and count(m.proprio_encoder) == 50
    assert count(m.decoder) == 10_140_163
    assert count(m.encoder) == 22_056_576  # frozen DINOv2 ViT-S/14
    assert m.num_parameters() == 30_262_923
    assert m.dim == 404 and m.patches == 196


def test_dinov2_has_the_official_layout_and_loads_it(model, dino_file: Path) -> None:
    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in DinoV2("vits14").state_dict().items()}
    assert ours == official_vits14_layout()
    state = torch.load(dino_file, weights_only=True)
    assert torch.equal(model.encoder.pos_embed, state["pos_embed"])
    assert torch.equal(model.encoder.blocks[11].ls2.gamma, state["blocks.11.ls2.gamma"])
    assert not any(p.requires_grad for p in model.encoder.parameters())


def test_dinov2_loader_names_bad_keys(tmp_path: Path, dino_file: Path) -> None:
    state = torch.load(dino_file, weights_only=True)
    state.pop("norm.bias")
    state["head.weight"] = torch.zeros(1)
    state["cls_token"] = torch.zeros(1, 1, 8)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with torch.device("meta"):
        net = DinoV2("vits14")
    with pytest.raises(ModelFileError, match=r"norm\.bias.*head\.weight.*cls_token"):
        load_dinov2(net, bad)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_dinov2(net, tmp_path / "missing.pth")


def test_without_weights_the_encoder_is_random_and_the_log_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with torch.device("meta"):
        net = DinoV2("vits14")
    assert not load_dinov2(net)
    assert not load_dinov2(net)
    assert sum("RANDOM" in r.message for r in caplog.records) == 1


def test_loss_trains_predictor_and_encoders_not_dinov2(model) -> None:
    out = model.loss(_batch())
    assert set(out.components) == {"z", "decoder_recon"} and torch.isfinite(out.total)
    out.total.backward()
    for name in ("predictor", "action_encoder", "proprio_encoder", "decoder"):
        assert all(p.grad is not None for p in getattr(model, name).parameters()), name
    assert all(p.grad is None for p in model.encoder.parameters())
    model.zero_grad(set_to_none=True)


def test_the_predictor_is_frame_causal() -> None:
    torch.manual_seed(0)
    vit = FrameCausalViT(dim=8, patches=2, frames=3, depth=2, heads=2, dim_head=4, mlp_dim=16)
    vit.eval()
    z = torch.randn(1, 3, 2, 8)
    changed = z.clone()
    changed[:, 2] += torch.randn(2, 8)  # random: a constant shift vanishes in the LayerNorms
    a, b = vit(z), vit(changed)
    assert torch.allclose(a[:, :2], b[:, :2], atol=1e-6) and not torch.allclose(a[:, 2], b[:, 2])


def test_act_plans_toward_a_goal_and_keeps_the_window(model) -> None:
    obs, goal = _obs((2,)), _obs((2,), seed=1)
    action, state = model.act(obs, None, goal=goal, eval_mode=True)
    assert action.shape == (2, 2) and action.abs().max() <= 1.0
    assert state["window"].shape == (2, 3, 4, 384 + 20)
    action, _ = model.act(obs, state, first=torch.zeros(2, dtype=torch.bool), goal=goal)
    assert torch.isfinite(action).all()


def test_bad_input_is_a_clear_error(model) -> None:
    obs = _obs((2,))
    with pytest.raises(PlanningError, match="goal"):
        model.act(obs)
    with pytest.raises(ShapeError, match=r"goal\['visual'\] must have shape"):
        model.act(obs, goal={"visual": torch.zeros(2, 3, 16, 16), "proprio": torch.zeros(2, 4)})
    with pytest.raises(ShapeError, match="num_hist \\+ 1 = 4 frames"):
        model.loss(_batch(t=3))
    _, state = model.act(obs, goal=obs)
    state["window"] = state["window"][:, :2]
    with pytest.raises(ShapeError, match="num_hist=3 frames"):
        model.act(obs, state, goal=obs)
    with pytest.raises(ConfigError, match="batch_length must be num_hist \\+ 1"):
        create_world_model("jepa:dino_wm", device="meta", batch_length=6)


def reference_checkpoint_layout(
    depth: int = 1,
    heads: int = 2,
    dim_head: int = 8,
    mlp: int = 32,
    channel: int = 8,
    res_blocks: int = 1,
    res_channel: int = 4,
) -> dict[str, tuple[int, ...]]:
    """Keys and shapes DINO-WM's modules (``ViTPredictor``, ``ProprioceptiveEmbedding``,
    ``VQVAE(quantize=False)``; gaoyuezhou/dino_wm @ 0a9492f) give at the SMALL sizes, written
    out: DINOv2 ViT-S (384) + proprio 10 + action 10 = 404-wide tokens, 3 frames of 2 x 2 patches,
    4-d proprio, 2-d actions, 3 image channels, codebook of 2048."""
    d, e, inner = 404, 384, heads * dim_head
    keys: dict[str, tuple[int, ...]] = {"predictor.pos_embedding": (1, 3 * 4, d)}
    for i in range(depth):
        p = f"predictor.transformer.layers.{i}."
        keys.update(
            {
                p + "0.norm.weight": (d,),
                p + "0.norm.bias": (d,),
                p + "0.to_qkv.weight": (3 * inner, d),
                p + "0.to_out.0.weight": (d, inner),
                p + "0.to_out.0.bias": (d,),
                p + "1.net.0.weight": (d,),
                p + "1.net.0.bias": (d,),
                p + "1.net.1.weight": (mlp, d),
                p + "1.net.1.bias": (mlp,),
                p + "1.net.4.weight": (d, mlp),
                p + "1.net.4.bias": (d,),
            }
        )
    keys.update(
        {
            "predictor.transformer.norm.weight": (d,),
            "predictor.transformer.norm.bias": (d,),
            "action_encoder.patch_embed.weight": (10, 2, 1),
            "action_encoder.patch_embed.bias": (10,),
            "proprio_encoder.patch_embed.weight": (10, 4, 1),
            "proprio_encoder.patch_embed.bias": (10,),
            "decoder.quantize_b.embed": (e, 2048),
            "decoder.quantize_b.cluster_size": (2048,),
            "decoder.quantize_b.embed_avg": (e, 2048),
        }
    )
    for part, out in (("upsample_b", e), ("dec", 3)):
        b = f"decoder.{part}.blocks."
        keys.update({b + "0.weight": (channel, e, 3, 3), b + "0.bias": (channel,)})
        for r in range(1, res_blocks + 1):
            keys.update(
                {
                    f"{b}{r}.conv.1.weight": (res_channel, channel, 3, 3),
                    f"{b}{r}.conv.1.bias": (res_channel,),
                    f"{b}{r}.conv.3.weight": (channel, res_channel, 1, 1),
                    f"{b}{r}.conv.3.bias": (channel,),
                }
            )
        t1, t2 = res_blocks + 2, res_blocks + 4  # after the ReLU; ConvTranspose is (in, out, k, k)
        keys.update(
            {
                f"{b}{t1}.weight": (channel, channel // 2, 4, 4),
                f"{b}{t1}.bias": (channel // 2,),
                f"{b}{t2}.weight": (channel // 2, out, 4, 4),
                f"{b}{t2}.bias": (out,),
            }
        )
    return keys


def _reference_file(tmp_path: Path, layout: dict[str, tuple[int, ...]], name: str) -> Path:
    """The converter's output: one state dict per DINO-WM module, nested by module name."""
    gen = torch.Generator().manual_seed(1)
    nested: dict[str, dict[str, torch.Tensor]] = {}
    for key, shape in layout.items():
        part, rest = key.split(".", 1)
        nested.setdefault(part, {})[rest] = torch.randn(shape, generator=gen)
    path = tmp_path / name
    torch.save({**nested, "epoch": 7}, path)
    return path


def test_dino_wm_checkpoint_in_the_reference_layout_loads(tmp_path: Path, dino_file: Path) -> None:
    layout = reference_checkpoint_layout()
    path = _reference_file(tmp_path, layout, "model_latest_converted.pt")
    ref = torch.load(path, weights_only=True)
    m = create_world_model("jepa:dino_wm", dino_weights=str(dino_file), weights=str(path), **SMALL)
    own = m.state_dict()
    blocks = ref["predictor"]
    assert torch.equal(own["predictor.pos_embedding"], blocks["pos_embedding"])
    assert torch.equal(
        own["predictor.layers.0.1.4.weight"], blocks["transformer.layers.0.1.net.4.weight"]
    )
    assert torch.equal(own["predictor.norm.bias"], blocks["transformer.norm.bias"])
    assert torch.equal(
        own["action_encoder.patch_embed.weight"], ref["action_encoder"]["patch_embed.weight"]
    )
    assert torch.equal(own["decoder.dec.blocks.5.weight"], ref["decoder"]["dec.blocks.5.weight"])
    # the frozen encoder keeps the DINOv2 weights it was built with (not in DINO-WM's files)
    assert torch.equal(own["encoder.cls_token"], torch.load(dino_file)["cls_token"])
    # every trainable tensor came from the file: the counts agree
    trainable = sum(p.numel() for n, p in m.named_parameters() if not n.startswith("encoder."))
    assert trainable == sum(
        math.prod(s) for k, s in layout.items() if not k.startswith("decoder.quantize_b")
    )


def test_dino_wm_checkpoint_errors_name_the_keys(tmp_path: Path, model) -> None:
    layout = reference_checkpoint_layout()
    del layout["predictor.transformer.norm.weight"]
    layout["predictor.transformer.layers.0.0.to_qkv.weight"] = (3, 404)
    path = _reference_file(tmp_path, layout, "bad.pt")
    before = model.predictor.pos_embedding.clone()
    with pytest.raises(ModelFileError, match=r"missing \(1\): predictor\.norm\.weight") as err:
        load_checkpoint(model, path)
    assert "predictor.layers.0.0.to_qkv.weight (3, 404) vs (48, 404)" in str(err.value)
    assert torch.equal(model.predictor.pos_embedding, before)  # nothing loaded from a bad file
    # the reference's own model_latest.pth pickles modules: refused, with the way out named
    pickled = tmp_path / "model_latest.pth"
    torch.save({"predictor": torch.nn.Linear(2, 2)}, pickled)
    with pytest.raises(ModelFileError, match="worldflux.models.jepa.convert_dino_wm"):
        load_checkpoint(model, pickled)
