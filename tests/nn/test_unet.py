"""Conditioned U-Net blocks: shapes, zero starts, conditioning, parameter counts."""

from __future__ import annotations

import pytest
import torch

from worldflux.errors import ConfigError, ShapeError
from worldflux.nn.unet import AdaGroupNorm, FourierFeatures, ResBlock, UNet


def test_resblock_starts_as_its_skip_path_and_uses_the_condition() -> None:
    block = ResBlock(8, 8, cond_dim=4, groups=4)
    x, cond = torch.randn(2, 8, 6, 6), torch.randn(2, 4)
    assert torch.equal(block(x, cond), x)
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.3)
    assert not torch.allclose(block(x, cond), block(x, torch.randn(2, 4)))


def test_resblock_parameter_count_by_hand() -> None:
    # in 8 -> out 16, condition 4, with attention
    block = ResBlock(8, 16, cond_dim=4, attn=True, groups=4)
    skip = 8 * 16 + 16
    norm1, norm2 = 4 * 16 + 16, 4 * 32 + 32  # Linear(cond, 2C)
    conv1, conv2 = 8 * 16 * 9 + 16, 16 * 16 * 9 + 16
    attn = (4 * 32 + 32) + (16 * 48 + 48) + (16 * 16 + 16)  # norm, qkv, out
    assert sum(p.numel() for p in block.parameters()) == skip + norm1 + norm2 + conv1 + conv2 + attn


def test_ada_group_norm_is_a_group_norm_at_start() -> None:
    norm = AdaGroupNorm(8, 3, groups=2)
    x = torch.randn(2, 8, 4, 4)
    assert torch.allclose(norm(x, torch.randn(2, 3)), torch.nn.functional.group_norm(x, 2))
    with pytest.raises(ConfigError, match="divisible by groups"):
        AdaGroupNorm(6, 3, groups=4)


def test_unet_shapes_and_zero_start() -> None:
    net = UNet(3, 3, channels=[8, 16], depths=[1, 1], attn=[False, True], cond_dim=6, groups=4)
    x, cond = torch.randn(2, 3, 8, 8), torch.randn(2, 6)
    out = net(x, cond)
    assert out.shape == (2, 3, 8, 8) and out.abs().max() == 0  # zero output conv
    torch.nn.init.normal_(net.conv_out.weight, std=0.1)
    out = net(x, cond)
    assert out.shape == (2, 3, 8, 8) and out.abs().max() > 0
    out.sum().backward()
    assert net.conv_in.weight.grad is not None
    with pytest.raises(ShapeError, match="divisible by 2"):
        net(torch.randn(2, 3, 7, 8), cond)
    with pytest.raises(ConfigError, match="one entry per level"):
        UNet(3, 3, channels=[8, 16], depths=[1], attn=[False, True], cond_dim=6)


def test_fourier_features() -> None:
    emb = FourierFeatures(8)
    out = emb(torch.tensor([0.0, 0.5]))
    assert out.shape == (2, 8)
    assert torch.equal(out[0], torch.tensor([1.0] * 4 + [0.0] * 4))
