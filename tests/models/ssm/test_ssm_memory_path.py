"""R2I's memory path end to end: training scan -> imagination start -> imagined steps.

The world-model phase hands its posterior states to the actor's imagination (``outputs["post"]``);
imagination must start from the full S5 state of every layer at each posterior step, the state
the one-step recurrence reaches after the same inputs, and step it with the same recurrence.
(The acting path, one ``act`` call per environment step, is covered by
``test_ssm_model.py::test_observe_scan_equals_stepping_the_agent``.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from worldflux import create_world_model
from worldflux.models.ssm import losses


def _model_and_batch(b: int = 2, t: int = 7):
    torch.manual_seed(0)
    model = create_world_model(
        "ssm:ci", obs_shape=(3,), action_spec={"kind": "discrete", "dim": 2, "num_actions": 2}
    ).eval()
    gen = torch.Generator().manual_seed(1)
    batch = {
        "obs": torch.rand(b, t, 3, generator=gen),
        "action": F.one_hot(torch.randint(0, 2, (b, t), generator=gen), 2).float(),
        "reward": torch.zeros(b, t),
        "first": torch.zeros(b, t, dtype=torch.bool),
        "terminal": torch.zeros(b, t, dtype=torch.bool),
    }
    batch["first"][:, 0] = True
    return model, batch


def test_imagination_starts_from_the_recurrence_state_of_every_layer() -> None:
    model, batch = _model_and_batch()
    with torch.no_grad():
        out = model.phase_loss("model", batch, {}).outputs
    post = out["post"]
    b, t = batch["first"].shape
    assert post["hidden"].shape == (b, t, 2, 16, 2)  # (B, T, layers, state, re/im)
    # the step-by-step recurrence from the learned initial state, fed the same posterior samples
    dyn = model.dynamics
    state = dyn.initial(b)
    action = batch["action"].clone()
    action[:, 0] = 0.0  # the action of an episode's first row is masked
    with torch.no_grad():
        for i in range(t):
            state = dyn.img_step(state, action[:, i], sample=False)
            torch.testing.assert_close(post["hidden"][:, i], state["hidden"], rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(post["deter"][:, i], state["deter"], rtol=1e-4, atol=1e-5)
            state = {**state, "stoch": post["stoch"][:, i]}
    # every layer's state is non-trivial (not zeros, not only the last layer's)
    assert (post["hidden"][:, 1:].abs().flatten(3).sum(-1) > 0).all()


def test_imagined_steps_continue_the_observed_sequence() -> None:
    model, batch = _model_and_batch()
    with torch.no_grad():
        post = model.phase_loss("model", batch, {}).outputs["post"]
        start = {k: v.flatten(0, 1) for k, v in post.items()}
        traj = losses.imagine(model, start, torch.zeros(len(start["deter"])), backprop=False)
    for k in ("deter", "stoch", "hidden"):
        torch.testing.assert_close(traj[k][:, 0], start[k])
    # the first imagined step is the recurrence applied to the start state under its action
    with torch.no_grad():
        nxt = model.dynamics.img_step(start, traj["action"][:, 0])
        # imagining from the posterior at t under the recorded action t + 1 gives the filtered
        # deter and S5 state at t + 1 (the prior's sample differs, the recurrence does not)
        cont = model.dynamics.img_step(
            {k: v[:, :-1].flatten(0, 1) for k, v in post.items()},
            batch["action"][:, 1:].flatten(0, 1),
        )
    torch.testing.assert_close(traj["deter"][:, 1], nxt["deter"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(traj["hidden"][:, 1], nxt["hidden"], rtol=1e-4, atol=1e-5)
    for k in ("deter", "hidden"):
        want = post[k][:, 1:].flatten(0, 1)
        torch.testing.assert_close(cont[k], want, rtol=1e-4, atol=1e-5)
    # the S5 state matters: zeroing it changes the imagined step
    zeroed = {**start, "hidden": torch.zeros_like(start["hidden"])}
    with torch.no_grad():
        other = model.dynamics.img_step(zeroed, traj["action"][:, 0])
    assert (other["deter"] - nxt["deter"]).abs().max() > 1e-3
