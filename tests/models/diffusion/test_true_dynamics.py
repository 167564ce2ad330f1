"""``scripts/diffusion_true_dynamics.py``: its stand-in for the world model steps the real Catch,
and the model's actor-critic phase trains through it (docs/learning.md, diffusion section)."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[3]


def load_script():
    path = ROOT / "scripts" / "diffusion_true_dynamics.py"
    spec = importlib.util.spec_from_file_location("diffusion_true_dynamics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_true_catch_steps_match_the_environment() -> None:
    script = load_script()
    collectors = [script.Collector(i, np.random.default_rng(i)) for i in range(3)]
    for c in collectors:
        c.advance(10)
    twins = [copy.deepcopy(c.env) for c in collectors]
    step = script.TrueCatch([copy.deepcopy(c.env) for c in collectors]).step
    state = {"frames": torch.zeros(3, 4, 3, 16, 16), "actions": torch.zeros(3, 4, dtype=torch.long)}
    action = torch.tensor([0, 1, 2])
    new, nxt, rew, end, _ = step(state, action, None)
    for i, env in enumerate(twins):
        obs, r, done, _ = env.step(np.eye(3, dtype=np.float32)[i])
        frame = script.frame(env.reset() if done else obs)
        assert torch.equal(nxt[i], torch.as_tensor(frame).float() / 127.5 - 1)
        assert (float(rew[i]), int(end[i])) == (r, int(done))
    assert torch.equal(new["frames"][:, -1], nxt)
    assert torch.equal(new["actions"][:, -2], action)


def test_actor_critic_phase_trains_on_the_true_dynamics() -> None:
    from worldflux import create_world_model

    script = load_script()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = create_world_model("diffusion:ci", action_dim=3, horizon=2)
    opts = model.configure_optimizers()
    model._burn_in_rew_end = lambda state: None
    collectors = [script.Collector(i, rng) for i in range(2)]
    for c in collectors:
        c.advance(5)
    before = [p.detach().clone() for p in model.actor_critic.parameters()]
    model._env_step = script.TrueCatch([copy.deepcopy(c.env) for c in collectors]).step
    batch = script.context_batch(collectors)
    assert batch["obs"].shape == (2, 4, 3, 16, 16)
    metrics, _ = model.run_update({"actor_critic": batch}, opts, log=False)
    assert torch.isfinite(metrics["loss/actor_critic"])
    after = list(model.actor_critic.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before))


def test_oracle_features_read_ball_and_paddle_from_the_frame() -> None:
    from worldflux.envs.embedded import Catch

    script = load_script()
    env, rng = Catch(size=16, seed=3), np.random.default_rng(3)
    obs = env.reset()
    for _ in range(40):
        x = torch.as_tensor(script.frame(obs))[None].float() / 127.5 - 1
        f = script.oracle_features(x)[0]
        assert f.shape == (18,) and f.sum() == 3
        assert int(f[:8].argmax()) == env._ball[0] and int(f[8:13].argmax()) == env._ball[1]
        assert int(f[13:].argmax()) == env._paddle
        obs, _, done, _ = env.step(np.eye(3, dtype=np.float32)[rng.integers(3)])
        if done:
            obs = env.reset()
    actor = script.OracleActorCritic(8, lstm=True)
    z = torch.zeros(1, 8)
    logits, value, (h, c) = actor(x, (z, z))
    assert logits.shape == (1, 3) and value.shape == (1,) and h.shape == (1, 8)


def test_reward_bias_prints_one_row_per_action(capsys) -> None:
    from worldflux import create_world_model

    script = load_script()
    torch.manual_seed(0)
    model = create_world_model("diffusion:ci", action_dim=3).eval()
    collectors = [script.Collector(i, np.random.default_rng(i)) for i in range(2)]
    for c in collectors:
        c.advance(6)
    script.reward_bias(model, collectors, horizon=1)
    rows = capsys.readouterr().out.strip().splitlines()[2:]
    assert [r.split("|")[1].strip() for r in rows] == ["0", "1", "2"]
    for r in rows:  # true rewards per step lie in [-1, 1]; at most one per step is counted
        cells = [c.strip() for c in r.split("|")[1:-1]]
        assert abs(float(cells[3])) <= 1 and all(0 <= float(x) <= 1 for x in cells[4].split("/"))
