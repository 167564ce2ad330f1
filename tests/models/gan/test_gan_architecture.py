"""GameGAN architecture: per-part counts of the reference, shapes, memory, gradients, phases."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from worldflux import create_world_model, get_config
from worldflux.models.gan.module import GameGAN
from worldflux.models.gan.sizes import simple_blocks, temporal_lengths
from worldflux.models.gan.unroll import cycle_loss, unroll

GENERATOR = ("encoder", "engine", "memory", "renderer")

# generator and discriminator of nv-tlabs/GameGAN_code @ 1195c39 built on CPU (.parameters())
REFERENCE = {
    "gan:base": (52_190_980, 3_854_067),
    "gan:vizdoom": (27_879_172, 3_855_091),
    "gan:vizdoom_memory": (48_751_414, 3_669_936),
}

# a tiny model on every code path of the memory preset (memory, 2 components, simple blocks,
# SPADE, cycle and alpha losses), at 16x16
TINY_MEMORY = {
    "obs_shape": [3, 16, 16],
    "action_dim": 4,
    "memory_flip_actions": [[0, 1]],
    "hidden_dim": 16,
    "memory_dim": 16,
    "memory_cells": 25,
    "z_dim": 4,
    "nfilter_g": 2,
    "nfilter_d": 2,
    "nfilter_d_temporal": 2,
    "bottom_width": 1,
    "fixed_v_dim": 4,
    "att_dim": 2,
    "spade_index": 2,
    "temporal_window": 6,
    "transition_dim": 8,
    "warm_up": 2,
    "batch_length": 8,
}


def _parts(model: GameGAN) -> tuple[int, int]:
    gen = sum(
        p.numel()
        for n in GENERATOR
        if getattr(model, n) is not None
        for p in getattr(model, n).parameters()
    )
    return gen, sum(p.numel() for p in model.discriminator.parameters())


# totals of every preset are checked by tests/test_presets.py; the split for the richest one here
# (the other two: pytest -m slow)
@pytest.mark.parametrize(
    "preset",
    [
        pytest.param(p, marks=[] if p == "gan:vizdoom_memory" else [pytest.mark.slow])
        for p in sorted(REFERENCE)
    ],
)
def test_generator_and_discriminator_counts_equal_the_reference(preset: str) -> None:
    with torch.device("meta"):
        model = GameGAN(get_config(preset))
    assert _parts(model) == REFERENCE[preset]


def test_temporal_discriminator_lengths() -> None:
    # config.py's num_steps 15 is one short for the third level of window 18
    assert temporal_lengths(15, 18, False)[-1] == 0
    assert temporal_lengths(16, 18, False) == [6, 3, 1]
    assert temporal_lengths(32, 32, True) == [7, 6, 1]
    assert simple_blocks(64, 7) == 3 and simple_blocks(16, 1) == 3


def _batch(config: Any, b: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    t, n = config.batch_length, config.action_dim
    action = F.one_hot(torch.randint(0, n, (b, t), generator=gen), n).float()
    action[:, 0] = 0
    obs = torch.randint(0, 256, (b, t, *config.obs_shape), dtype=torch.uint8, generator=gen)
    return {"obs": obs, "action": action}


@pytest.fixture(scope="module")
def memory_model() -> GameGAN:
    torch.manual_seed(0)
    return create_world_model("gan:vizdoom_memory", **TINY_MEMORY)


def test_memory_model_renders_frames_and_masks(memory_model: GameGAN) -> None:
    c = memory_model.config
    frames, actions = memory_model._sequence(_batch(c))
    gen = unroll(memory_model, frames, actions, 2, torch.randn(7, 2, c.z_dim))
    assert gen.frames.shape == (7, 2, 3, 16, 16)
    assert gen.frames.abs().max() <= 1.0
    masks = torch.cat(gen.masks[0], 1)
    assert torch.allclose(masks.sum(1), torch.ones(2, 16, 16), atol=1e-5)  # fine-mask softmax
    # the shift is a zero-padded 3x3 conv: attention mass can only leak out at the grid's edge
    assert (gen.alphas[-1].sum(1) <= 1 + 1e-5).all()


def test_mirrored_actions_shift_memory_attention_the_other_way(memory_model: GameGAN) -> None:
    mem = memory_model.memory
    assert mem is not None
    a0, a1 = torch.eye(4)[:1], torch.eye(4)[1:2]
    assert torch.allclose(mem._kernels(a0), torch.flip(mem._kernels(a1), [2, 3]))


def test_cycle_loss_trains_dynamics_and_memory_not_the_renderer(memory_model: GameGAN) -> None:
    c = memory_model.config
    memory_model.zero_grad()
    frames, actions = memory_model._sequence(_batch(c))
    gen = unroll(memory_model, frames, actions, 2, torch.randn(7, 2, c.z_dim))
    cycle_loss(memory_model, gen).backward()
    assert all(p.grad is None for p in memory_model.renderer.parameters())
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in memory_model.memory.parameters()
    )
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in memory_model.engine.parameters()
    )


def test_each_phase_trains_its_parts(memory_model: GameGAN) -> None:
    batch = _batch(memory_model.config)
    memory_model.zero_grad()
    g = memory_model.phase_loss("generator", batch, {})
    assert {"cycle", "alpha", "recon", "feature_match", "g_z_recon"} <= set(g.components)
    g.total.backward()
    for name in GENERATOR:
        grads = [p.grad for p in getattr(memory_model, name).parameters()]
        assert any(x is not None and x.abs().sum() > 0 for x in grads), name
    memory_model.zero_grad()
    d = memory_model.phase_loss("discriminator", batch, {"generator": g})
    d.total.backward()
    assert all(p.grad is None for n in GENERATOR for p in getattr(memory_model, n).parameters())
    # every weight learns; the logit biases may not (hinge: real and fake pulls cancel exactly)
    weights = {n: p for n, p in memory_model.discriminator.named_parameters() if p.dim() > 1}
    dead = [n for n, p in weights.items() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead


def test_optimisers_are_the_reference_adams() -> None:
    model = create_world_model("gan:ci")
    gen_opt, dis_opt = model.configure_optimizers()
    assert gen_opt.defaults["betas"] == (0.0, 0.9) and dis_opt.defaults["betas"] == (0.0, 0.9)
    # temporal part and graphics part: two groups, like the reference's two generator Adams
    groups = [{id(p) for p in g["params"]} for g in gen_opt.param_groups]
    assert groups[0] == {id(p) for p in model.renderer.parameters()}
    temporal = {id(p) for n in ("encoder", "engine") for p in getattr(model, n).parameters()}
    assert groups[1] == temporal
    assert {id(p) for p in dis_opt.param_groups[0]["params"]} == {
        id(p) for p in model.discriminator.parameters()
    }


def test_warm_up_decays_over_updates() -> None:
    model = create_world_model("gan:ci", warm_up=4, warm_up_decay_updates=10, min_warm_up=1)
    seen = []
    for done in (0, 1, 5, 9, 10, 50):
        model.updates_done = done
        seen.append(model.current_warm_up(8))
    assert seen == [4, 4, 2, 1, 1, 1]


def test_rollout_responds_to_actions_and_observe_feeds_frames() -> None:
    torch.manual_seed(0)
    model = create_world_model("gan:ci").eval()
    batch = _batch(model.config)
    first = torch.zeros(2, 8, dtype=torch.bool)
    first[:, 0] = True
    states, last = model.observe(batch["obs"], batch["action"], first)
    assert states["h"].shape == (2, 8, model.config.hidden_dim)
    assert torch.equal(last["frame"], model.frames(batch["obs"][:, -1], 1))
    gen = torch.Generator().manual_seed(0)
    left = model.rollout(dict(last), torch.zeros(2, 3, dtype=torch.long), gen)
    gen = torch.Generator().manual_seed(0)
    right = model.rollout(dict(last), torch.full((2, 3), 3, dtype=torch.long), gen)
    assert left.states["frame"].shape == (2, 3, 3, 16, 16)
    assert not torch.equal(left.states["frame"], right.states["frame"])


def test_attention_gain_loads_from_the_reference_scalar_layout() -> None:
    from worldflux.models.gan.layers import SelfAttention

    block = SelfAttention(16)
    assert block.gamma.shape == (1,)  # FSDP cannot shard a 0-d parameter
    state = {k: v.clone() for k, v in block.state_dict().items()}
    state["gamma"] = torch.tensor(0.25)  # the reference (BigGAN) keeps a 0-d scalar
    block.load_state_dict(state)
    assert block.gamma.item() == 0.25
    x = torch.randn(2, 16, 8, 8)
    assert block(x).shape == x.shape
