"""DreamerV3 losses and training: gradient routing, determinism, learning, Lightning."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from tests.models.dreamerv3.conftest import MULTIMODAL, VECTOR, make_batch


def _grads(model, loss: torch.Tensor) -> dict[str, torch.Tensor | None]:
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return {n: p.grad for n, p in model.named_parameters()}


def _nonzero(grad: torch.Tensor | None) -> bool:
    return grad is not None and bool(grad.abs().sum() > 0)


@pytest.mark.parametrize("overrides", [{}, VECTOR, MULTIMODAL], ids=["image", "vector", "multi"])
def test_every_trained_part_gets_gradients(build, overrides) -> None:
    torch.manual_seed(0)
    model = build(**overrides)
    model.dynamics.free_nats = 0.0  # below the free nats the KL terms have no gradient at all
    # one update first: zero-initialised output layers (reward, value) block gradients at init
    model.train_update(make_batch(model.config, seed=1), model.configure_optimizers())
    out = model.loss(make_batch(model.config))
    assert torch.isfinite(out.total)
    grads = _grads(model, out.total)
    for name, grad in grads.items():
        if name.startswith("slow_value."):
            assert grad is None, name
        else:
            assert _nonzero(grad), f"no gradient reaches {name}"


def test_stop_gradients_route_each_loss(build) -> None:
    torch.manual_seed(0)
    model = build()
    model.dynamics.free_nats = 0.0
    model.train_update(make_batch(model.config, seed=1), model.configure_optimizers())
    out = model.loss(make_batch(model.config))
    c = out.components
    # imagination losses reach only the actor and the critic
    for term, owner in (("policy", "policy."), ("value", "value.")):
        grads = _grads(model, c[term])
        reached = {n.split(".")[0] + "." for n, g in grads.items() if _nonzero(g)}
        assert reached == {owner}, (term, reached)
    # the replay value loss also shapes the representation (official repval_grad: True)
    grads = _grads(model, c["repval"])
    assert _nonzero(grads["value.out.weight"]) and _nonzero(grads["encoder.cnn.0.weight"])
    assert not _nonzero(grads["policy.logits.weight"])


def test_kl_stop_gradients(build) -> None:
    rssm = build().dynamics
    rssm.free_nats = 0.0
    post = torch.randn(2, 3, rssm.stoch, rssm.classes, requires_grad=True)
    deter = torch.randn(2, 3, rssm.deter, requires_grad=True)
    losses, _ = rssm.kl_losses(post, deter)
    d_post, d_deter = torch.autograd.grad(losses["dyn"].sum(), [post, deter], allow_unused=True)
    assert d_post is None and _nonzero(d_deter)  # dyn: KL(sg(post) || prior) trains the prior
    d_post, d_deter = torch.autograd.grad(losses["rep"].sum(), [post, deter], allow_unused=True)
    assert _nonzero(d_post) and d_deter is None  # rep: KL(post || sg(prior)) trains the posterior


def test_same_seed_same_losses(build) -> None:
    results = []
    for _ in range(2):
        torch.manual_seed(123)
        model = build()
        opt = model.configure_optimizers()
        batch = make_batch(model.config)
        first = model.train_update(batch, opt)
        second = model.loss(batch)
        results.append((first.total.item(), {k: v.item() for k, v in second.components.items()}))
    assert results[0] == results[1]


def test_training_decreases_loss_on_fixed_batch(build) -> None:
    torch.manual_seed(0)
    model = build()
    opt = model.configure_optimizers()
    batch = make_batch(model.config, b=2, t=8)
    wm = ("dyn", "rep", "rec_obs", "rew", "con")
    losses = []
    for _ in range(5):
        out = model.train_update(batch, opt)
        losses.append(sum(out.components[k].item() for k in wm))
    # random pixels: the reconstruction floor is ~1024 (12288 pixels x variance 1/12)
    assert losses[-1] < 0.9 * losses[0] and losses == sorted(losses, reverse=True), losses


def test_slow_value_tracks_value(build) -> None:
    torch.manual_seed(0)
    model = build()
    opt = model.configure_optimizers()
    before = [p.clone() for p in model.slow_value.parameters()]
    model.train_update(make_batch(model.config), opt)
    for old, slow, fast in zip(before, model.slow_value.parameters(), model.value.parameters()):
        assert torch.allclose(slow, old + 0.02 * (fast - old), atol=1e-7)


def test_lightning_fit_runs(build, tmp_path) -> None:
    torch.manual_seed(0)
    model = build(**VECTOR)
    batches = [make_batch(model.config, seed=i) for i in range(2)]
    loader = torch.utils.data.DataLoader(batches, batch_size=None)
    trainer = L.Trainer(
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        accelerator="cpu",
    )
    trainer.fit(model, loader)
    logged = trainer.callback_metrics
    assert "train/loss/total" in logged and "train/ac/ret_scale" in logged
    assert "train/grad/agent_norm" in logged
    assert int(model.slow_count) == 2
