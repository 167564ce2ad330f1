"""The shared transformer: masks, positions, adaLN-Zero, the KV cache, parameter counts."""

from __future__ import annotations

import pytest
import torch

from worldflux.errors import ConfigError, ShapeError
from worldflux.nn.transformer import (
    RotaryEmbedding,
    Transformer,
    TransformerBlock,
    attention_mask,
    sinusoidal_positions,
)


def test_causal_and_frame_causal_masks() -> None:
    pos = torch.arange(6)
    causal = attention_mask("causal", pos, pos)
    assert torch.equal(causal, torch.tril(torch.ones(6, 6, dtype=torch.bool)))
    frames = attention_mask("frame_causal", pos, pos, tokens_per_frame=2)
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 1, 0, 0],
            [1, 1, 1, 1, 0, 0],
            [1, 1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(frames, expected)
    # rows of a later piece over all keys are the same rows of the full mask
    assert torch.equal(attention_mask("frame_causal", pos[4:], pos, 2), expected[4:])
    assert attention_mask("none", pos, pos) is None
    with pytest.raises(ConfigError, match="unknown attention mask"):
        attention_mask("sideways", pos, pos)


def test_causal_mask_stops_information_from_the_future() -> None:
    net = Transformer(16, depth=2, heads=2, max_len=8, mask="causal").eval()
    x = torch.randn(1, 8, 16)
    y = x.clone()
    y[:, 5:] = torch.randn(1, 3, 16)
    assert torch.allclose(net(x)[:, :5], net(y)[:, :5], atol=1e-6)
    assert not torch.allclose(net(x)[:, 5:], net(y)[:, 5:])


def test_frame_causal_mask_sees_its_own_frame() -> None:
    net = Transformer(16, depth=1, heads=2, max_len=8, mask="frame_causal", tokens_per_frame=4)
    net.eval()
    x = torch.randn(1, 8, 16)
    y = x.clone()
    y[:, 3] += torch.randn(16)  # last token of frame 0: changes tokens 0-3, and frame 1
    changed = (net(x) - net(y)).abs().amax(-1)[0] > 1e-6
    assert changed.all()
    y = x.clone()
    y[:, 4] += torch.randn(16)  # first token of frame 1: frame 0 unchanged
    changed = (net(x) - net(y)).abs().amax(-1)[0] > 1e-6
    assert not changed[:4].any() and changed[4:].all()


def test_rope_scores_depend_on_relative_position_only() -> None:
    rope = RotaryEmbedding(8)
    q, k = torch.randn(8), torch.randn(8)

    def score(m: int, n: int) -> torch.Tensor:
        qm = rope(q.view(1, 8), torch.tensor([m]))
        kn = rope(k.view(1, 8), torch.tensor([n]))
        return (qm * kn).sum()

    assert torch.allclose(score(3, 1), score(10, 8), atol=1e-5)
    assert torch.allclose(score(0, 0), (q * k).sum(), atol=1e-6)  # position 0 is no rotation
    assert not torch.allclose(score(3, 1), score(3, 2))
    # a rotation keeps norms
    x = torch.randn(5, 8)
    assert torch.allclose(rope(x, torch.arange(5)).norm(dim=-1), x.norm(dim=-1), atol=1e-5)


def test_sinusoidal_positions() -> None:
    emb = sinusoidal_positions(torch.arange(4), 6)
    assert emb.shape == (4, 6)
    assert torch.allclose(emb[0], torch.tensor([0.0, 0, 0, 1, 1, 1]))
    with pytest.raises(ConfigError):
        sinusoidal_positions(torch.arange(4), 5)


def test_adaln_zero_block_starts_as_identity() -> None:
    block = TransformerBlock(16, heads=4, cond_dim=8)
    x, cond = torch.randn(2, 5, 16), torch.randn(2, 8)
    pos = torch.arange(5)
    assert torch.equal(block(x, None, pos, cond), x)
    with pytest.raises(ShapeError, match="needs a condition"):
        block(x, None, pos)
    # once the modulation is trained, the condition changes the output
    torch.nn.init.normal_(block.ada[1].weight)
    assert not torch.allclose(block(x, None, pos, cond), x)
    out = block(x, None, pos, cond)
    assert not torch.allclose(out, block(x, None, pos, torch.randn(2, 8)))


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rope"])
def test_kv_cache_matches_the_full_sequence_token_by_token(positions: str) -> None:
    net = Transformer(16, depth=2, heads=4, max_len=10, positions=positions, mask="causal").eval()
    x = torch.randn(3, 10, 16)
    full = net(x)
    cache = net.new_cache(3)
    steps = [net(x[:, :4], cache=cache)] + [net(x[:, t : t + 1], cache=cache) for t in range(4, 10)]
    assert cache.length == 10
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
    with pytest.raises(ShapeError, match="exceeds max_len"):
        net(x[:, :1], cache=cache)


def test_kv_cache_frame_causal_with_condition() -> None:
    net = Transformer(
        16, depth=2, heads=2, max_len=12, mask="frame_causal", tokens_per_frame=3, cond_dim=4
    )
    for p in net.parameters():  # leave the zero start so the condition matters
        torch.nn.init.normal_(p, std=0.2)
    net.eval()
    x, cond = torch.randn(2, 12, 16), torch.randn(2, 4)
    full = net(x, cond)
    cache = net.new_cache(2)
    pieces = [net(x[:, i : i + 3], cond, cache) for i in range(0, 12, 3)]
    assert torch.allclose(torch.cat(pieces, 1), full, atol=1e-5)
    cache.reset()
    with pytest.raises(ShapeError, match="whole frames"):
        net(x[:, :2], cond, cache)


def _formula(dim: int, depth: int, ratio: float, max_len: int, learned: bool, cond: int) -> int:
    hidden = int(dim * ratio)
    attn = dim * 3 * dim + 3 * dim + dim * dim + dim  # qkv and output projection, with biases
    mlp = dim * hidden + hidden + hidden * dim + dim
    norms = 0 if cond else 2 * 2 * dim  # two affine LayerNorms
    ada = cond * 6 * dim + 6 * dim if cond else 0
    final = cond * 2 * dim + 2 * dim if cond else 2 * dim
    return depth * (attn + mlp + norms + ada) + final + (max_len * dim if learned else 0)


@pytest.mark.parametrize(
    ("positions", "cond"), [("learned", 0), ("rope", 0), ("sinusoidal", 12), ("learned", 12)]
)
def test_parameter_count_by_hand(positions: str, cond: int) -> None:
    net = Transformer(
        32, depth=3, heads=4, max_len=20, mlp_ratio=2.0, positions=positions, cond_dim=cond
    )
    expected = _formula(32, 3, 2.0, 20, positions == "learned", cond)
    assert sum(p.numel() for p in net.parameters()) == expected
    # one worked example in full: D=32, depth 3, ratio 2, 20 learned positions, no condition
    if positions == "learned" and not cond:
        assert expected == 3 * (4224 + 4192 + 128) + 64 + 640 == 26_336


def test_bad_configs_name_the_field() -> None:
    with pytest.raises(ConfigError, match="positions"):
        Transformer(16, 1, 2, 8, positions="absolute")
    with pytest.raises(ConfigError, match="tokens_per_frame"):
        Transformer(16, 1, 2, 8, mask="frame_causal", tokens_per_frame=3)
    with pytest.raises(ConfigError, match="divisible by heads"):
        Transformer(15, 1, 2, 8)
