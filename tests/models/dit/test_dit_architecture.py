"""DiT architecture: NWM's CDiT parameter layout, the cross-attention against torch's
``nn.MultiheadAttention(add_bias_kv=True)``, and the frozen SD VAE's size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from worldflux import create_world_model
from worldflux.models.dit.networks import CDiT, CrossAttention


def reference_layout(hidden: int, depth: int, k: int, n: int, c: int, p: int) -> dict:
    """Key -> shape of facebookresearch/nwm @ 3f6cd8e ``CDiT`` (3-d actions, learn_sigma)."""
    h3 = hidden // 3
    out = {
        "pos_embed": (k + 1, n, hidden),
        "x_embedder.proj.weight": (hidden, c, p, p),
        "x_embedder.proj.bias": (hidden,),
    }
    for name, width in [
        ("t_embedder", hidden),
        ("time_embedder", hidden),
        ("y_embedder.x_emb", h3),
        ("y_embedder.y_emb", h3),
        ("y_embedder.angle_emb", hidden - 2 * h3),
    ]:
        out |= {
            f"{name}.mlp.0.weight": (width, 256),
            f"{name}.mlp.0.bias": (width,),
            f"{name}.mlp.2.weight": (width, width),
            f"{name}.mlp.2.bias": (width,),
        }
    for i in range(depth):
        b = f"blocks.{i}."
        out |= {
            b + "attn.qkv.weight": (3 * hidden, hidden),
            b + "attn.qkv.bias": (3 * hidden,),
            b + "attn.proj.weight": (hidden, hidden),
            b + "attn.proj.bias": (hidden,),
            b + "cttn.in_proj_weight": (3 * hidden, hidden),
            b + "cttn.in_proj_bias": (3 * hidden,),
            b + "cttn.bias_k": (1, 1, hidden),
            b + "cttn.bias_v": (1, 1, hidden),
            b + "cttn.out_proj.weight": (hidden, hidden),
            b + "cttn.out_proj.bias": (hidden,),
            b + "adaLN_modulation.1.weight": (11 * hidden, hidden),
            b + "adaLN_modulation.1.bias": (11 * hidden,),
            b + "mlp.fc1.weight": (4 * hidden, hidden),
            b + "mlp.fc1.bias": (4 * hidden,),
            b + "mlp.fc2.weight": (hidden, 4 * hidden),
            b + "mlp.fc2.bias": (hidden,),
        }
    out |= {
        "final_layer.linear.weight": (p * p * 2 * c, hidden),
        "final_layer.linear.bias": (p * p * 2 * c,),
        "final_layer.adaLN_modulation.1.weight": (2 * hidden, hidden),
        "final_layer.adaLN_modulation.1.bias": (2 * hidden,),
    }
    return out


def test_state_dict_has_the_reference_layout_at_s2() -> None:
    model = create_world_model("dit:s2", device="meta")
    ours = {k: tuple(v.shape) for k, v in model.denoiser.state_dict().items()}
    assert ours == reference_layout(384, 12, 4, 196, 4, 2)
    # the EMA copy is not trained and not counted
    assert model.num_parameters() == 49_227_680
    assert model.num_parameters(trainable_only=False) == 2 * 49_227_680


def test_cross_attention_equals_torch_multihead_attention_with_bias_kv() -> None:
    torch.manual_seed(0)
    ours, ref = (
        CrossAttention(16, 4),
        nn.MultiheadAttention(16, 4, add_bias_kv=True, batch_first=True),
    )
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_()
    ours.load_state_dict(ref.state_dict())
    x, ctx = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    want = ref(x, ctx, ctx, need_weights=False)[0]
    torch.testing.assert_close(ours(x, ctx), want, rtol=1e-5, atol=1e-5)


def test_adaln_zero_start_predicts_zero_and_context_matters_after_training_weights() -> None:
    torch.manual_seed(0)
    net = CDiT(8, 2, 2, 3, 2, hidden_size=24, depth=1, num_heads=2)
    x, ctx, a = torch.randn(2, 3, 8, 8), torch.randn(2, 2, 3, 8, 8), torch.randn(2, 2)
    t, rel = torch.tensor([3, 500]), torch.ones(2)
    assert torch.equal(net(x, t, a, ctx, rel), torch.zeros(2, 6, 8, 8))  # zero-initialised output
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    out = net(x, t, a, ctx, rel)
    assert not torch.allclose(out, net(x, t, a, ctx + 1, rel))
    assert not torch.allclose(out, net(x, t, a + 1, ctx, rel))
    assert not torch.allclose(out, net(x, t, a, ctx, rel + 1))


def test_pos_embed_starts() -> None:
    # NWM's N(0, 0.02) by default; "sincos" adds the 2-D sin-cos grid to every frame's tokens
    torch.manual_seed(0)
    normal = CDiT(16, 4, 4, 3, 2, hidden_size=32, depth=1, num_heads=2).pos_embed.detach()
    torch.manual_seed(0)
    net = CDiT(16, 4, 4, 3, 2, hidden_size=32, depth=1, num_heads=2, pos_embed_init="sincos")
    grid = net.pos_embed.detach() - normal  # (K + 1, 16 tokens, 32)
    assert 0.015 < normal.std() < 0.025 and grid.abs().max() <= 1.0 + 1e-6
    assert torch.allclose(grid, grid[:1].expand_as(grid))  # the same grid in every frame
    row, col = grid[0].view(4, 4, 32)[..., 0], grid[0].view(4, 4, 32)[..., 16]  # lowest sines
    torch.testing.assert_close(row, torch.arange(4.0).sin()[:, None].expand(4, 4))
    torch.testing.assert_close(col, torch.arange(4.0).sin()[None, :].expand(4, 4))
    assert sum(p.numel() for p in net.parameters()) == sum(
        p.numel() for p in CDiT(16, 4, 4, 3, 2, hidden_size=32, depth=1, num_heads=2).parameters()
    )


def test_sd_vae_architecture_has_the_reference_size() -> None:
    pytest.importorskip("diffusers")
    from worldflux.models.dit.weights import build_sd_vae

    with torch.device("meta"):
        vae = build_sd_vae()
    assert sum(p.numel() for p in vae.parameters()) == 83_653_863
    assert not any(p.requires_grad for p in vae.parameters())
