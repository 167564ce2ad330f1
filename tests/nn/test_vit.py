"""Patch and tubelet embeddings with 2-D / 3-D sincos positions."""

from __future__ import annotations

import pytest
import torch

from worldflux.errors import ConfigError, ShapeError
from worldflux.nn.vit import PatchEmbed, TubeletEmbed, sincos_1d, sincos_positions


def test_patch_embedding_shapes_order_and_parameters() -> None:
    embed = PatchEmbed(image_size=(8, 12), patch=4, in_channels=3, dim=16, positions="none")
    assert embed.grid == (2, 3) and embed.num_tokens == 6
    assert sum(p.numel() for p in embed.parameters()) == 3 * 4 * 4 * 16 + 16
    x = torch.zeros(2, 3, 8, 12)
    x[:, :, 4:8, 8:12] = 1.0  # only the last patch (row 1, column 2) is non-zero
    tokens = embed(x) - embed.proj.bias
    assert tokens.shape == (2, 6, 16)
    assert tokens[:, :5].abs().max() == 0 and tokens[:, 5].abs().max() > 0
    with pytest.raises(ShapeError, match="images must be"):
        embed(torch.zeros(2, 3, 8, 8))


def test_tubelet_embedding_vjepa2_geometry() -> None:
    # V-JEPA 2's tokeniser: 2 x 16 x 16 tubelets; 4 frames of 32x32 give 2 x 2 x 2 tokens
    embed = TubeletEmbed(frames=4, image_size=32, patch=16, tubelet=2, in_channels=3, dim=24)
    assert embed.grid == (2, 2, 2) and embed.tokens_per_frame == 4
    assert sum(p.numel() for p in embed.parameters()) == 3 * 2 * 16 * 16 * 24 + 24
    x = torch.zeros(1, 3, 4, 32, 32)
    x[:, :, 2:4, 0:16, 16:32] = 1.0  # time step 1, row 0, column 1 -> token 1 * 4 + 0 * 2 + 1
    tokens = embed(x) - embed.pos - embed.proj.bias
    nonzero = tokens.abs().amax(-1)[0] > 1e-4
    assert nonzero.nonzero().flatten().tolist() == [5]
    with pytest.raises(ConfigError, match="divisible"):
        TubeletEmbed(frames=3, image_size=32, patch=16, tubelet=2, in_channels=3, dim=24)


def test_sincos_positions_split_channels_by_axis() -> None:
    pos = sincos_positions((2, 3), 8)
    assert pos.shape == (6, 8)
    rows, cols = pos[:, :4], pos[:, 4:]
    assert torch.equal(rows[0], rows[2]) and not torch.equal(rows[0], rows[3])  # row of token
    assert torch.equal(cols[0], cols[3]) and not torch.equal(cols[0], cols[1])  # column
    assert torch.allclose(sincos_1d(torch.tensor([0]), 4), torch.tensor([[0.0, 0, 1, 1]]))
    pos3 = sincos_positions((2, 2, 2), 12)
    assert pos3.shape == (8, 12)
    assert len({tuple(r.tolist()) for r in pos3}) == 8  # every token distinct
    with pytest.raises(ConfigError, match="divisible by 6"):
        sincos_positions((2, 2, 2), 8)
