"""V-JEPA 2 building blocks: the released 3-D rotary layout, frame-causality of the AC predictor,
the masked encoder path, multi-block masks and gradient flow of both stages."""

from __future__ import annotations

import math

import pytest
import torch

from tests.models.vjepa2.conftest import make_batch
from worldflux.models.vjepa2.masks import multiblock_masks
from worldflux.models.vjepa2.module import VJEPA2, VJEPA2Pretrain, l1_loss
from worldflux.models.vjepa2.planning import VJEPA2CEM
from worldflux.nn.rope3d import Rotary3D, grid_positions


def test_rotary_uses_the_released_frequency_layout() -> None:
    # head width 12: each axis gets 4 channels; channel j uses omega[j mod 2], omega = [1, 1/100]
    rope = Rotary3D(12)
    x = torch.arange(1.0, 13.0).view(1, 1, 1, 12)
    p = 2.0
    out = rope(x, torch.tensor([[p, 0.0, 0.0]]))[0, 0, 0]
    a0, a1 = p * 1.0, p * 0.01
    expected = torch.tensor(
        [
            1 * math.cos(a0) - 2 * math.sin(a0),
            2 * math.cos(a1) + 1 * math.sin(a1),
            3 * math.cos(a0) - 4 * math.sin(a0),
            4 * math.cos(a1) + 3 * math.sin(a1),
        ]
    )
    torch.testing.assert_close(out[:4], expected)
    torch.testing.assert_close(out[4:], x[0, 0, 0, 4:])  # row and column 0: not rotated


def test_grid_positions_split_ids_into_frame_row_column() -> None:
    pos = grid_positions(torch.tensor([0, 5, 13, 31]), 4, 4)
    assert pos.tolist() == [[0, 0, 0], [0, 1, 1], [0, 3, 1], [1, 3, 3]]


def test_ac_predictor_is_frame_causal(ac: VJEPA2) -> None:
    p, d = ac.tokens_per_frame, ac.config.enc_dim
    frames, actions = torch.randn(1, 3, p, d), torch.randn(1, 3, 2)
    out = ac.predict(frames, actions)
    frames2, actions2 = frames.clone(), actions.clone()
    frames2[:, 2] += 1.0
    actions2[:, 2] += 1.0
    out2 = ac.predict(frames2, actions2)
    torch.testing.assert_close(out[:, :2], out2[:, :2])
    assert not torch.allclose(out[:, 2], out2[:, 2])


def test_masked_encoder_with_every_id_equals_the_full_forward(pre: VJEPA2Pretrain) -> None:
    video = torch.randn(2, 3, 4, 16, 16)
    full = pre.encoder(video)
    keep = torch.arange(full.shape[1]).expand(2, -1)
    torch.testing.assert_close(pre.encoder(video, keep), full)


def test_multiblock_masks_split_the_grid() -> None:
    gen = torch.Generator().manual_seed(0)
    keep, target = multiblock_masks(3, (2, 8, 8), 2, 0.15, (0.75, 1.5), gen)
    assert keep.shape[0] == target.shape[0] == 3 and target.shape[1] > 0
    for k, t in zip(keep, target):
        assert not set(k.tolist()) & set(t.tolist())
        # blocks span every time step (temporal scale 1): frame 1 repeats frame 0's pattern
        assert {i - 64 for i in t.tolist() if i >= 64} <= {i for i in t.tolist() if i < 64} | {
            i - 64 for i in t.tolist() if i >= 64
        }


def test_ac_loss_is_teacher_forcing_plus_rollout(ac: VJEPA2) -> None:
    batch = make_batch(t=4)
    out = ac.loss(batch)
    with torch.no_grad():
        h = ac.encode_frames(ac._pixels(batch["obs"], 2))
        a = batch["action"][:, 1:].float()
        tf = l1_loss(ac.predict(h[:, :-1], a), h[:, 1:], 1.0)
        one = ac.predict(h[:, :1], a[:, :1])
        two = ac.predict(torch.cat([h[:, :1], one], 1), a[:, :2])[:, -1:]
        roll = l1_loss(torch.cat([one, two], 1), h[:, 1:3], 1.0)
    torch.testing.assert_close(out.components["teacher_forcing"], tf)
    torch.testing.assert_close(out.components["rollout"], roll)
    torch.testing.assert_close(out.total, tf + roll)


def test_ac_gradients_reach_the_predictor_only(ac: VJEPA2) -> None:
    ac.zero_grad(set_to_none=True)
    ac.loss(make_batch()).total.backward()
    assert all(p.grad is None for p in ac.encoder.parameters())
    # unused extrinsics encoder; the state weights see zero states (no proprioception here)
    skip = ("extrinsics", "state_encoder.weight")
    grads = [p.grad for n, p in ac.predictor.named_parameters() if not n.startswith(skip)]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    ac.zero_grad(set_to_none=True)


def test_pretrain_gradients_and_ema_target(pre: VJEPA2Pretrain) -> None:
    pre.zero_grad(set_to_none=True)
    pre.loss(make_batch()).total.backward()
    assert all(p.grad is not None for p in pre.encoder.parameters())
    assert all(p.grad is None for p in pre.target_encoder.parameters())
    used = [p.grad for n, p in pre.predictor.named_parameters() if "mask_tokens" not in n]
    assert all(g is not None for g in used)
    with torch.no_grad():
        for p in pre.encoder.parameters():
            p.add_(1.0)
    before = [p.clone() for p in pre.target_encoder.parameters()]
    pre.after_phase("train")
    m = pre.config.ema_momentum
    for b, t, s in zip(before, pre.target_encoder.parameters(), pre.encoder.parameters()):
        torch.testing.assert_close(t, m * b + (1 - m) * s)
    pre.zero_grad(set_to_none=True)


def test_cem_plan_and_goal_score(ac: VJEPA2, monkeypatch: pytest.MonkeyPatch) -> None:
    small = VJEPA2CEM(2, num_samples=16, num_elites=4, iterations=2, init_std=1.0, action_low=-1.0)
    monkeypatch.setattr(ac, "planner", small)
    batch = make_batch(b=2)
    obs, goal = batch["obs"][:, 0], batch["obs"][:, 1]
    action, state = ac.act(obs, goal=goal, eval_mode=True)
    assert action.shape == (2, 2) and action.abs().max() <= 1.0 and state is None
    z = ac.encode(obs)
    assert ac.score_goal(z, obs).abs().max() < 1e-6
    assert (ac.score_goal(z, goal) < 0).all()
    out = ac.rollout(z, torch.zeros(2, 3, 2))
    assert out.states.shape == (2, 3, ac.tokens_per_frame, ac.config.enc_dim)
