"""Exact derivative targets: the physics envs record ``dx/dt``, the replay keeps it, the loss uses it.

Both references regress exact time derivatives (hamiltonian-nn @ bcc3622 ``dynamics_fn``,
lagrangian_nns @ 2fc26cb ``analytical_fn``); ``derivative_target: exact`` does the same on the
``state_dot`` the embedded systems record with each observed state.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from worldflux import create_world_model, get_config
from worldflux.data.replay import Replay
from worldflux.envs.physics import PhysicsEnv, double_pendulum_energy
from worldflux.envs.registry import make_vector_env
from worldflux.errors import ConfigError, ShapeError


def _energy_gradient(x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of the double pendulum's energy at ``x (4,)`` (float64)."""
    eye = np.eye(4) * h
    return np.array([(double_pendulum_energy(x + e) - double_pendulum_energy(x - e)) / (2 * h)
                     for e in eye])  # fmt: skip


def test_recorded_derivative_is_the_analytic_one() -> None:
    for system in ("spring", "pendulum", "double_pendulum"):
        env = PhysicsEnv(system, dt=0.05, substeps=20, record_derivative=True, seed=0)
        assert env.spec.extras == {"state_dot": env.state.shape[0]}
        env.reset()
        for _ in range(5):
            env.step(np.zeros(1, np.float32))
        x, xdot = env.state.copy(), env.state_derivative()
        assert xdot.dtype == np.float32
        if system == "spring":  # H = q^2 + p^2: (dH/dp, -dH/dq)
            want = np.array([2 * x[1], -2 * x[0]])
        elif system == "pendulum":  # H = 3 (1 - cos q) + p^2
            want = np.array([2 * x[1], -3 * math.sin(x[0])])
        else:  # dq/dt = qd, and the field conserves the energy: grad E . f = 0
            want = np.concatenate([x[2:], xdot[2:]])
            assert abs(_energy_gradient(x) @ xdot) < 1e-4 * np.abs(xdot).max()
        assert np.allclose(xdot, want, atol=1e-5), (system, xdot, want)
        # the derivative of the flow: one tiny RK4 step moves x by h * dx/dt + O(h^2)
        h = 1e-4
        small = PhysicsEnv(system, dt=h, substeps=1, seed=0)
        assert np.allclose((small.advance(x) - x) / h, xdot, atol=1e-2 * max(1, abs(xdot).max()))
    for kw in ({"system": "torque_pendulum"}, {"system": "pendulum", "obs": "pixels"}):
        with pytest.raises(ConfigError, match="record_derivative"):
            PhysicsEnv(**kw, record_derivative=True)


def test_the_replay_keeps_each_states_derivative() -> None:
    cfg = {"suite": "embedded", "id": "physics", "system": "double_pendulum", "dt": 0.05,
           "substeps": 5, "max_steps": 6, "record_derivative": True}  # fmt: skip
    envs = make_vector_env({**cfg, "num_envs": 2}, seed=0)
    replay = Replay(envs.spec, 100, envs.num_envs, seed=0)
    step = envs.step(None)
    for _ in range(20):
        replay.add(step)
        step = envs.step(np.zeros((2, 1), np.float32))
    batch = replay.sample(8, 5)
    assert batch["state_dot"].shape == (8, 5, 4) and batch["obs"].shape == (8, 5, 4)
    probe = PhysicsEnv("double_pendulum", seed=0)
    for x, xdot in zip(batch["obs"].reshape(-1, 4), batch["state_dot"].reshape(-1, 4)):
        assert np.allclose(probe.state_derivative(x), xdot, atol=1e-4)
    plain = make_vector_env({**cfg, "record_derivative": False}, seed=0)
    assert "state_dot" not in plain.step(None) and "state_dot" not in Replay(plain.spec, 8).layout()


@pytest.mark.parametrize("preset", ["physics:base", "physics:lnn"])
def test_exact_target_loss_regresses_the_field_on_state_dot(preset: str) -> None:
    torch.manual_seed(0)
    model = create_world_model(preset, hidden_dim=8, derivative_target="exact")
    d = model.state_dim
    x, xdot = torch.randn(2, 3, d), torch.randn(2, 3, d)
    batch = {"obs": x, "action": torch.zeros(2, 3, 1), "state_dot": xdot}
    first = torch.zeros(2, 3, dtype=torch.bool)
    first[:, 0] = first[0, 2] = True  # every state has its own target: episode starts count too
    out = model.loss({**batch, "first": first})
    err = model.time_derivative(x.reshape(-1, d)) - xdot.reshape(-1, d)
    want = err.abs().mean() if model.config.loss == "l1" else err.pow(2).mean()
    assert torch.allclose(out.total, want, atol=1e-6)
    # the target is the recorded derivative: the model's own field as state_dot gives zero loss
    own = model.time_derivative(x.reshape(-1, d)).detach().view(2, 3, d)
    assert model.loss({**batch, "state_dot": own}).total.item() < 1e-6 < out.total.item()
    out.total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    with pytest.raises(ConfigError, match="record_derivative=true"):
        model.loss({"obs": x, "action": torch.zeros(2, 3, 1)})
    with pytest.raises(ShapeError, match="state_dot"):
        model.loss({**batch, "state_dot": xdot[:, :2]})
    with pytest.raises(ShapeError, match="finite"):
        model.loss({**batch, "state_dot": xdot * float("nan")})


def test_exact_target_needs_an_unforced_one_step_kind() -> None:
    assert get_config("physics:base").derivative_target == "forward"
    for preset, kw in (("physics:controlled", {}), ("physics:base", {"rollout_steps": 2}),
                       ("physics:pixel_hnn", {})):  # fmt: skip
        with pytest.raises(ConfigError, match="derivative_target 'exact'"):
            get_config(preset, derivative_target="exact", **kw)
    with pytest.raises(ConfigError, match="'derivative_target'"):
        get_config("physics:lnn", derivative_target="backward")


def test_definite_mass_hinge_adds_the_lowest_eigenvalue_penalty() -> None:
    from torch.func import hessian

    from worldflux.models.physics.dynamics import wrap_angles

    torch.manual_seed(0)
    plain = create_world_model("physics:lnn", hidden_dim=16)
    hinged = create_world_model("physics:lnn", hidden_dim=16, definite_mass_coef=2.0,
                                definite_mass_margin=0.5)  # fmt: skip
    hinged.load_state_dict(plain.state_dict())
    x, xdot = torch.randn(2, 3, 4) * 2, torch.randn(2, 3, 4)
    batch = {"obs": x, "action": torch.zeros(2, 3, 1), "state_dot": xdot}
    base, out = plain.loss(batch), hinged.loss(batch)
    assert torch.allclose(out.components["derivative"], base.total, atol=1e-6)
    # the penalty from the Hessian of the network itself, at the wrapped angles it sees
    flat = x.reshape(-1, 4)
    seen = torch.cat([wrap_angles(flat[:, :2]), flat[:, 2:]], 1)
    mass = torch.stack([hessian(lambda s: plain.field_net(s[None])[0, 0])(s)[2:, 2:] for s in seen])
    lowest = torch.linalg.eigvalsh(mass)[:, 0]
    want = 2.0 * torch.relu(0.5 - lowest).mean()
    assert want > 0 and torch.allclose(out.components["definite_mass"], want, atol=1e-5)
    assert torch.allclose(out.total, base.total + want, atol=1e-5)
    field, got_mass = hinged.lagrangian_field_and_mass(flat)
    assert torch.allclose(got_mass, mass, atol=1e-5)
    assert torch.allclose(field, plain.time_derivative(flat), atol=1e-6)
    out.total.backward()  # the hinge trains the network
    assert hinged.field_net.linear1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "overrides",
    [{"baseline": True}, {"derivative_target": "forward"}, {"definite_mass_margin": 0.0}],
)
def test_definite_mass_hinge_refuses_what_it_cannot_apply(overrides: dict) -> None:
    with pytest.raises(ConfigError, match="definite_mass"):
        create_world_model("physics:lnn", hidden_dim=8, definite_mass_coef=1.0, **overrides)
    with pytest.raises(ConfigError, match="definite_mass_coef"):
        create_world_model("physics:base", hidden_dim=8, definite_mass_coef=1.0)


def test_energy_range_draws_uniform_starts_of_those_energies() -> None:
    """``energy_range`` keeps the box's uniform draws whose energy lies in it (the slow LNN test's
    training states: the LNN reference's box, at the held-out starts' energies)."""
    box = {"angle_range": [-math.pi, math.pi], "speed_range": [-10, 10]}
    env = PhysicsEnv("double_pendulum", dt=0.01, energy_range=[-30, 1], seed=0, **box)
    starts = np.stack([env.reset()["obs"] for _ in range(400)]).astype(np.float64)
    energy = double_pendulum_energy(starts)
    assert energy.max() <= 1 + 1e-4 and np.abs(starts[:, 2:]).max() > 6
    # the same share above -10 as the uniform box filtered independently (~43%)
    rng = np.random.default_rng(1)
    draws = np.concatenate([rng.uniform(-math.pi, math.pi, (20000, 2)),
                            rng.uniform(-10, 10, (20000, 2))], 1)  # fmt: skip
    kept = double_pendulum_energy(draws)
    kept = kept[kept <= 1]
    assert abs((energy > -10).mean() - (kept > -10).mean()) < 0.08
    # without it, the starts are the box's first draws, as before the option existed
    rng = np.random.default_rng(3)
    plain = PhysicsEnv("double_pendulum", seed=3).reset()["obs"]
    want = np.concatenate([rng.uniform(-math.pi / 2, math.pi / 2, 2), rng.uniform(-0.5, 0.5, 2)])
    assert np.allclose(plain, want)
    for bad in ({"energy_range": [1.0, 0.0]}, {"energy_range": [0.0]},
                {"energy_range": [0.0, 1.0], "system": "pendulum"}):  # fmt: skip
        with pytest.raises(ConfigError, match="energy_range"):
            PhysicsEnv(**{"system": "double_pendulum", **bad})
    with pytest.raises(ConfigError, match="no double-pendulum start"):
        PhysicsEnv("double_pendulum", energy_range=[100, 200], seed=0).reset()


def test_burn_in_starts_episodes_mid_trajectory() -> None:
    """``burn_in`` advances each drawn start by unobserved steps: the first observation is the
    state that many steps along the same trajectory."""
    zero = np.zeros(1, np.float32)
    for system in ("spring", "double_pendulum"):
        burnt = PhysicsEnv(system, dt=0.05, substeps=5, burn_in=[3, 3], seed=0)
        plain = PhysicsEnv(system, dt=0.05, substeps=5, seed=0)
        first, _ = burnt.reset()["obs"], plain.reset()
        for _ in range(3):
            want = plain.step(zero)[0]["obs"]
        assert np.allclose(first, want, atol=1e-6)
    # the step count is a uniform integer in [low, high], drawn after the start (spring: exact
    # rotation by 2 dt per step)
    spread, counts = PhysicsEnv("spring", dt=0.05, burn_in=[0, 40], seed=0), []
    rng = np.random.default_rng(0)
    for _ in range(30):
        direction, scale = rng.uniform(-1, 1, 2), rng.uniform(0.1, 1.0)
        start, k = direction / np.linalg.norm(direction) * scale, int(rng.integers(0, 41))
        rng.standard_normal(2)  # the observation noise's draw (noise_std 0)
        c, s_ = np.cos(2 * 0.05 * k), np.sin(2 * 0.05 * k)
        want = np.array([c * start[0] + s_ * start[1], c * start[1] - s_ * start[0]])
        assert np.allclose(spread.reset()["obs"], want, atol=1e-6)
        counts.append(k)
    assert len(set(counts)) > 15
    for bad in ([-1, 2], [3, 1], [1]):
        with pytest.raises(ConfigError, match="burn_in"):
            PhysicsEnv("double_pendulum", burn_in=bad)
    with pytest.raises(ConfigError, match="burn_in"):
        PhysicsEnv("torque_pendulum", burn_in=[0, 1])
