"""TD-MPC2 training: where gradients stop, the EMA targets, masking, learning on a fixed batch,
the Lightning entry point, and errors on bad input."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from worldflux import get_config
from worldflux.errors import ConfigError, ShapeError
from worldflux.models.tdmpc2.module import TDMPC2

OBS, ACT, B, T = 24, 6, 8, 4


def make_batch(b: int = B, t: int = T, obs: int = OBS, act: int = ACT) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    first = torch.zeros(b, t, dtype=torch.bool)
    first[:, 0] = True
    return {
        "obs": torch.randn(b, t, obs, generator=g),
        "action": torch.rand(b, t, act, generator=g) * 2 - 1,
        "reward": torch.rand(b, t, generator=g),
        "first": first,
        "terminal": torch.zeros(b, t, dtype=torch.bool),
    }


@pytest.fixture
def model() -> TDMPC2:
    return TDMPC2(get_config("tdmpc2:ci"))


def grads(module: torch.nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


def test_world_model_loss_does_not_train_policy_or_targets(model: TDMPC2) -> None:
    out = model.loss(make_batch())
    out.total.backward()
    assert all(g is None for g in grads(model.policy))
    assert all(g is None for g in grads(model.target_q))
    assert all(g is not None for g in grads(model.encoder))
    assert all(g is not None for g in grads(model.q_ensemble))


def test_td_target_has_no_gradient(model: TDMPC2) -> None:
    z = torch.softmax(torch.randn(3, 5, 16, requires_grad=True), -1)
    target = model.td_target(z, torch.zeros(3, 5), torch.zeros(3, 5), None)
    assert not target.requires_grad


def test_policy_loss_only_trains_the_policy() -> None:
    model = TDMPC2(get_config("tdmpc2:ci", num_tasks=2))
    batch = make_batch()
    batch["task"] = torch.tensor([0, 1] * (B // 2))
    w = model._windows(batch)
    _, zs = model.world_model_loss(w)
    zs = zs.detach().requires_grad_(True)
    loss, _ = model.policy_loss(zs, w["task"], w["valid"])
    loss.backward()
    assert all(g is not None for g in grads(model.policy))
    for part in (model.q_ensemble, model.encoder, model.dynamics, model.reward, model.task_emb):
        assert all(g is None for g in grads(part))
    assert zs.grad is None  # latents are detached inside


def test_ema_targets_move_by_tau(model: TDMPC2) -> None:
    before = [p.clone() for p in model.target_q.parameters()]
    with torch.no_grad():
        for p in model.q_ensemble.parameters():
            p.add_(1.0)
    model.update_targets()
    tau = model.config.tau
    for b, p, online in zip(before, model.target_q.parameters(), model.q_ensemble.parameters()):
        torch.testing.assert_close(p, b + tau * (online - b))


def test_steps_after_an_episode_start_are_masked(model: TDMPC2) -> None:
    batch = make_batch()
    batch["first"][0, 2] = True
    torch.manual_seed(3)
    ref = model.loss(batch).total
    batch["obs"][0, 2:] += 5.0  # only the masked steps of row 0 change
    batch["reward"][0, 2:] += 5.0
    torch.manual_seed(3)
    torch.testing.assert_close(model.loss(batch).total, ref)


def test_long_sequences_are_cut_into_windows(model: TDMPC2) -> None:
    w = model._windows(make_batch(t=7))  # horizon 3: windows [0..3], [3..6]
    assert w["obs"].shape == (4, 2 * B, OBS) and w["action"].shape == (3, 2 * B, ACT)


def test_updates_reduce_the_loss_on_a_fixed_batch(model: TDMPC2) -> None:
    batch = make_batch()
    opts = model.build_optimizers()
    first = [model.update(batch, *opts)["loss/total"] for _ in range(3)]
    for _ in range(40):
        last = model.update(batch, *opts)["loss/total"]
    assert last < 0.7 * first[0]
    assert model.scale.value.item() >= 1.0


def test_lightning_fit_runs_manual_optimisation(model: TDMPC2) -> None:
    batch = make_batch()
    data = [{k: v[i] for k, v in batch.items()} for i in range(B)]
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    before = model.policy.net[0].weight.clone()
    trainer = L.Trainer(
        max_steps=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, loader)
    assert not torch.equal(before, model.policy.net[0].weight)
    assert "train/loss/total" in trainer.logged_metrics


def test_act_returns_bounded_actions_and_warm_start_state(model: TDMPC2) -> None:
    action, state = model.act(torch.randn(3, OBS))
    assert action.shape == (3, ACT) and action.abs().max() <= 1
    assert state["prev_mean"].shape == (3, model.config.horizon, ACT)
    action, state = model.act(
        torch.randn(3, OBS), state, first=torch.tensor([1, 0, 0]).bool(), eval_mode=True
    )
    assert action.abs().max() <= 1


def test_act_with_policy_prior(model: TDMPC2) -> None:
    model.config.mpc = False
    obs = torch.randn(2, OBS)
    a1, state = model.act(obs, eval_mode=True)
    a2, _ = model.act(obs, eval_mode=True)
    assert state is None
    torch.testing.assert_close(a1, a2)


def test_act_multitask_masks_padded_actions() -> None:
    model = TDMPC2(get_config("tdmpc2:ci", num_tasks=2, task_action_dims=[2, 6]))
    action, _ = model.act(torch.randn(2, OBS), task=torch.tensor([0, 1]))
    assert torch.all(action[0, 2:] == 0) and torch.any(action[1, 2:] != 0)


def test_bad_inputs_name_what_was_expected(model: TDMPC2) -> None:
    with pytest.raises(ShapeError, match=r"\(B, 24\)"):
        model.act(torch.randn(3, 23))
    batch = make_batch(act=ACT + 1)
    with pytest.raises(ShapeError, match="action_dim=6"):
        model.loss(batch)
    with pytest.raises(ShapeError, match="horizon"):
        model.loss(make_batch(t=2))
    multi = TDMPC2(get_config("tdmpc2:ci", num_tasks=2))
    with pytest.raises(ShapeError, match=r"\[0, 2\)"):
        multi.act(torch.randn(1, OBS), task=2)
    with pytest.raises(ShapeError, match="needs task ids"):
        multi.act(torch.randn(1, OBS))


def test_bad_configs_are_rejected() -> None:
    with pytest.raises(ConfigError, match="continuous"):
        get_config("tdmpc2:ci", action_kind="discrete")
    with pytest.raises(ConfigError, match="task_action_dims"):
        get_config("tdmpc2:ci", num_tasks=2, task_action_dims=[3])
    with pytest.raises(ConfigError, match="64"):
        get_config("tdmpc2:5m", obs_shape=(3, 84, 84))


def test_state_dict_round_trip(model: TDMPC2) -> None:
    model.update_targets()
    clone = TDMPC2(model.config)
    clone.load_state_dict(model.state_dict())
    for a, b in zip(model.state_dict().values(), clone.state_dict().values()):
        torch.testing.assert_close(a, b)


@pytest.mark.gpu
def test_update_and_act_on_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model = TDMPC2(get_config("tdmpc2:5m")).to("cuda")
    batch = {k: v.cuda() for k, v in make_batch(b=256).items()}
    metrics = model.update(batch, *model.build_optimizers())
    assert torch.isfinite(metrics["loss/total"])
    action, state = model.act(torch.randn(4, OBS, device="cuda"))
    assert action.device.type == "cuda" and state["prev_mean"].shape == (4, 3, ACT)
