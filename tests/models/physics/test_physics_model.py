"""Physics family: counts per part, the fields against hand-derived physics, losses, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from worldflux import create_world_model, get_config
from worldflux.envs.physics import PhysicsEnv, _double_pendulum_field
from worldflux.errors import ConfigError, ShapeError
from worldflux.models.physics import dynamics
from worldflux.models.physics.networks import MLP, MLPAutoencoder, symplectic_matrix


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parts_have_the_reference_sizes() -> None:
    with torch.device("meta"):
        hnn = MLP(2, 200, 2, 2, "tanh", last_bias=False)
        ae = MLPAutoencoder(2 * 28 * 28, 200, 2, "relu")
        lnn = MLP(4, 600, 1, 3, "softplus", last_bias=True)
    assert _count(hnn) == 41_200 and hnn.linear3.bias is None
    assert _count(ae) == 831_970 - 41_200
    assert _count(lnn) == 724_801
    pixel = create_world_model("physics:pixel_hnn", device="meta")
    assert _count(pixel.autoencoder) == 790_770 and _count(pixel.field_net) == 41_200


def test_symplectic_matrix_is_the_reference_permutation() -> None:
    m = symplectic_matrix(4)
    assert torch.equal(
        m, torch.tensor([[0, 0, 1, 0], [0, 0, 0, 1], [-1, 0, 0, 0], [0, -1, 0, 0.0]])
    )
    levi = symplectic_matrix(3, canonical=False)  # hamiltonian-nn's loop, written out
    assert torch.equal(levi, torch.tensor([[0, 1, -1], [-1, 0, 1], [1, -1, 0.0]]))


def _hnn(**kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_world_model("physics:base", **{"hidden_dim": 16, **kw})


def test_hnn_field_is_the_symplectic_gradient_of_its_second_output() -> None:
    model = _hnn()
    x = torch.randn(5, 2, requires_grad=True)
    h = model.field_net(x)[:, 1].sum()
    dh = torch.autograd.grad(h, x)[0]
    expected = torch.stack([dh[:, 1], -dh[:, 0]], -1)  # (dH/dp, -dH/dq)
    assert torch.allclose(model.time_derivative(x.detach()), expected, atol=1e-6)
    with torch.no_grad():  # planning calls it under no_grad
        assert torch.allclose(model.time_derivative(x.detach()), expected, atol=1e-6)


@pytest.mark.parametrize("integrator", ["leapfrog", "rk4"])
def test_learned_energy_is_conserved_by_the_rollout(integrator: str) -> None:
    model = _hnn(integrator=integrator, dt=0.02)
    x = torch.randn(4, 2) * 0.5
    states = model.rollout(x, torch.zeros(4, 150, 1)).states
    energy = model.field_net(states.reshape(-1, 2))[:, 1].view(4, 150)
    start = model.field_net(x)[:, 1:2]
    assert (energy - start).abs().max() < 1e-3 * max(1.0, start.abs().max().item())


def test_integrators_on_the_harmonic_oscillator() -> None:
    f = lambda x: torch.stack([x[:, 1], -x[:, 0]], -1)  # noqa: E731  H = (q^2 + p^2) / 2
    x0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    energy = {}
    for name in dynamics.INTEGRATORS:
        x = x0
        for _ in range(1000):
            x = dynamics.step(f, x, 0.05, name)
        energy[name] = float((x**2).sum() / 2)
    exact = torch.tensor([[math.cos(50.0), -math.sin(50.0)]], dtype=torch.float64)
    x = x0
    for _ in range(1000):
        x = dynamics.step(f, x, 0.05, "rk4")
    assert torch.allclose(x, exact, atol=1e-5)
    assert energy["euler"] > 1.5  # explicit Euler spirals out
    for name in ("semi_implicit_euler", "leapfrog"):  # symplectic: bounded energy error
        assert abs(energy[name] - 0.5) < 0.05


def test_lagrangian_field_recovers_the_double_pendulum_accelerations() -> None:
    g = 9.8

    def lagrangian(x: torch.Tensor) -> torch.Tensor:
        t1, t2, w1, w2 = x[:, 0], x[:, 1], x[:, 2], x[:, 3]
        kinetic = 0.5 * w1**2 + 0.5 * (w1**2 + w2**2 + 2 * w1 * w2 * torch.cos(t1 - t2))
        potential = -2 * g * torch.cos(t1) - g * torch.cos(t2)
        return (kinetic - potential)[:, None]

    x = torch.tensor(np.random.default_rng(0).uniform(-4, 4, (6, 4)), dtype=torch.float64)
    want = np.stack([_double_pendulum_field(row, 0.0) for row in x.numpy()])
    for wrap in (False, True):  # wrapping angles to [-pi, pi) changes nothing for a periodic L
        got = dynamics.lagrangian_field(lagrangian, x, angle_wrap=wrap)
        assert np.allclose(got.numpy(), want, atol=1e-8)
    wrapped = dynamics.wrap_angles(torch.tensor([-np.pi, -0.1, 0.1, 3.5, -3.5]))
    assert torch.allclose(
        wrapped, torch.tensor([-np.pi, -0.1, 0.1, 3.5 - 2 * np.pi, 2 * np.pi - 3.5])
    )


def _batch(x: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
    first = torch.zeros(x.shape[:2], dtype=torch.bool)
    first[:, 0] = True
    first[0, 3] = True  # an episode boundary inside the first sequence
    return {"obs": x, "action": a, "first": first}


def test_derivative_loss_is_the_finite_difference_regression() -> None:
    model = _hnn(dt=0.1, loss_integrator="euler")
    x, a = torch.randn(2, 5, 2), torch.zeros(2, 5, 1)
    out = model.loss(_batch(x, a))
    target = (x[:, 1:] - x[:, :-1]) / 0.1
    pred = model.time_derivative(x[:, :-1].reshape(-1, 2)).view(2, 4, 2)
    per_pair = (pred - target).pow(2).mean(-1)
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[0, 2] = False  # the pair (x[0, 2], x[0, 3]) straddles the reset
    assert torch.allclose(out.total, per_pair[mask].mean(), atol=1e-6)


def test_central_target_is_the_second_order_difference() -> None:
    model = _hnn(dt=0.1, derivative_target="central")
    x, a = torch.randn(2, 5, 2), torch.zeros(2, 5, 1)
    out = model.loss(_batch(x, a))
    target = (x[:, 2:] - x[:, :-2]) / 0.2
    pred = model.time_derivative(x[:, 1:-1].reshape(-1, 2)).view(2, 3, 2)
    per_point = (pred - target).pow(2).mean(-1)
    mask = torch.ones(2, 3, dtype=torch.bool)
    mask[0, 1:] = False  # x[0, 3] starts an episode: centres 2 and 3 straddle it
    assert torch.allclose(out.total, per_point[mask].mean(), atol=1e-6)
    # on an exact trajectory of the spring the central target is O(dt^2), the forward O(dt)
    c, s = math.cos(0.2), math.sin(0.2)
    traj = [torch.tensor([1.0, 0.0])]
    for _ in range(2):
        q, p = traj[-1]
        traj.append(torch.stack([c * q + s * p, c * p - s * q]))
    exact = torch.tensor([2 * traj[1][1], -2 * traj[1][0]])  # (dH/dp, -dH/dq), H = q^2 + p^2
    central, forward = (traj[2] - traj[0]) / 0.2, (traj[2] - traj[1]) / 0.1
    assert (central - exact).norm() < 0.1 * (forward - exact).norm()
    # loss_cap truncates each element's error: above it the value stays, the gradient goes
    capped = _hnn(dt=0.1, derivative_target="central", loss_cap=0.5)
    xg = x.clone().requires_grad_(True)
    err = capped.time_derivative(xg[:, 1:-1].reshape(-1, 2)).view(2, 3, 2) - target.detach()
    out = capped.loss(_batch(xg, a))
    want = err.pow(2).clamp(max=0.25).mean(-1)
    assert torch.allclose(out.total, want[mask].mean(), atol=1e-6)
    out.total.backward()
    assert xg.grad is not None and (err.abs() > 0.5).any() and (err.abs() < 0.5).any()
    for bad in ({"kind": "controlled"}, {"rollout_steps": 2}):
        with pytest.raises(ConfigError, match="derivative_target 'central'"):
            get_config("physics:controlled" if bad.get("kind") else "physics:base",
                       derivative_target="central", rollout_steps=bad.get("rollout_steps", 1))  # fmt: skip


def test_lnn_loss_is_l1_and_reaches_the_lagrangian() -> None:
    torch.manual_seed(0)
    model = create_world_model("physics:lnn", hidden_dim=8)
    assert model.config.derivative_target == "exact"  # the reference's analytical targets
    x, target = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    out = model.loss({"obs": x, "action": torch.zeros(2, 3, 1), "state_dot": target})
    pred = model.time_derivative(x.reshape(-1, 4)).view(2, 3, 4)
    assert torch.allclose(out.total, (pred - target).abs().mean(), atol=1e-5)
    out.total.backward()
    # every weight moves the dynamics; the last bias is a constant in L and rightly gets none
    for name, p in model.field_net.named_parameters():
        moved = p.grad is not None and bool(p.grad.abs().sum() > 0)
        assert moved == (name != "linear4.bias"), name


def test_pixel_hnn_loss_matches_the_reference_formula() -> None:
    torch.manual_seed(0)
    model = create_world_model("physics:pixel_hnn", hidden_dim=8, ae_hidden_dim=8,
                               obs_shape=[2, 6, 6])  # fmt: skip
    obs = torch.randint(0, 256, (3, 2, 2, 6, 6), dtype=torch.uint8)
    out = model.loss({"obs": obs, "action": torch.zeros(3, 2, 1)})
    x, xn = obs[:, 0].reshape(3, -1).float() / 255, obs[:, 1].reshape(3, -1).float() / 255
    ae = model.autoencoder
    z, zn = ae.encode(x), ae.encode(xn)
    ref = ((x - ae.decode(z)) ** 2).mean(1)
    ref = ref + ((z[:, 1:] - (zn[:, :1] - z[:, :1])) ** 2).mean(1)
    ref = ref + 0.1 * ((zn - (z + model.time_derivative(z))) ** 2).mean(1)
    assert torch.allclose(out.total, ref.mean(), atol=1e-6)


def test_controlled_gradients_reach_every_part() -> None:
    model = create_world_model("physics:controlled", hidden_dim=8, obs_shape=[2], action_dim=1)
    x, a = torch.randn(2, 6, 2), torch.rand(2, 6, 1) * 2 - 1
    model.loss({"obs": x, "action": a}).total.backward()
    for part in (model.field_net, model.input_matrix, model.dissipation):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_dissipation_only_removes_energy_without_actions() -> None:
    torch.manual_seed(1)
    model = create_world_model("physics:controlled", hidden_dim=8, dt=0.01)
    x = torch.randn(8, 2)
    h0 = model.energy_net(x)[:, 0]
    h1 = model.energy_net(model.transition(x, torch.zeros(8, 1)))[:, 0]
    assert (h1 <= h0 + 1e-5).all()


def test_angle_embedding_makes_the_controlled_model_periodic_in_q() -> None:
    torch.manual_seed(2)
    model = create_world_model("physics:controlled", hidden_dim=8, angle_embed=True)
    assert model.field_net.linear1.in_features == 3  # (cos q, sin q, p)
    assert model.input_matrix.net.linear1.in_features == 2  # (cos q, sin q)
    x, u = torch.randn(6, 2), torch.rand(6, 1)
    turn = torch.tensor([2 * math.pi, 0.0])
    step, wound = model.transition(x, u), model.transition(x + 3 * turn, u)
    assert torch.allclose(wound - 3 * turn, step, atol=1e-4)  # float32 rounding of q + 6 pi
    # dH/dq by the chain rule through (cos q, sin q): the field is the symplectic gradient
    xg = x.clone().requires_grad_(True)
    dh = torch.autograd.grad(model.energy_net(xg).sum(), xg)[0]
    field = model.time_derivative(x, torch.zeros(6, 1))
    assert torch.allclose(field[:, 0], dh[:, 1], atol=1e-6)
    with pytest.raises(ConfigError, match="angle_embed"):
        get_config("physics:lnn", angle_embed=True)


def test_lnn_init_is_the_references_custom_init() -> None:
    torch.manual_seed(0)
    net = MLP(4, 200, 1, 3, "softplus", last_bias=True)
    net.lnn_init_()
    # lagrangian_nns lnn.custom_init: zero biases, std s / sqrt(max side): s = 2.2, 0.58 i, n
    for i, scale in enumerate((2.2, 0.58, 1.16, 200.0)):
        layer = net.layers()[i]
        assert torch.count_nonzero(layer.bias) == 0
        std = layer.weight.std().item() * math.sqrt(200) / scale
        assert abs(std - 1) < 0.12, (i, std)
    # physics:lnn applies it to the Lagrangian; the baseline keeps the orthogonal weights
    lnn = create_world_model("physics:lnn", hidden_dim=8).field_net
    assert all(torch.count_nonzero(layer.bias) == 0 for layer in lnn.layers())
    w = create_world_model("physics:lnn", hidden_dim=8, baseline=True).field_net.linear1.weight
    assert torch.allclose(w.t() @ w, torch.eye(4), atol=1e-5)
    with pytest.raises(ConfigError, match="init 'lnn' applies to kind 'lnn'"):
        get_config("physics:base", init="lnn")
    with pytest.raises(ConfigError, match="'init'"):
        get_config("physics:lnn", init="xavier")


def test_bad_inputs_are_clear_errors() -> None:
    model = _hnn()
    with pytest.raises(ShapeError, match=r"last dimension D=2"):
        model.transition(torch.zeros(3, 3), torch.zeros(3, 1))
    with pytest.raises(ShapeError, match="finite"):
        model.encode(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ShapeError, match=r"actions must have shape \(3, 1\)"):
        model.transition(torch.zeros(3, 2), torch.zeros(3, 2))
    with pytest.raises(ShapeError, match="finite"):
        model.transition(torch.zeros(1, 2), torch.tensor([[float("inf")]]))
    with pytest.raises(ShapeError, match=r"rollout_steps \+ 1"):
        model.loss({"obs": torch.zeros(2, 1, 2), "action": torch.zeros(2, 1, 1)})
    for dt in (0.0, -0.1):
        with pytest.raises(ConfigError, match="'dt'"):
            get_config("physics:base", dt=dt)
        with pytest.raises(ConfigError, match="step size dt"):
            dynamics.step(lambda x: x, torch.zeros(1, 2), dt, "rk4")
        with pytest.raises(ConfigError, match="dt"):
            PhysicsEnv(dt=dt)
    with pytest.raises(ConfigError, match="even size"):
        get_config("physics:base", obs_shape=[3])
    with pytest.raises(ConfigError, match="integrator"):
        get_config("physics:base", integrator="verlet")
    with pytest.raises(ConfigError, match="ControlledPhysics"):
        get_config("physics:base", kind="controlled")


def test_env_systems_conserve_energy_and_render() -> None:
    for system, dt in (("spring", 0.1), ("pendulum", 0.1), ("double_pendulum", 0.05)):
        env = PhysicsEnv(system, dt=dt, substeps=20, seed=0)
        env.reset()
        e0 = env.energy()
        for _ in range(30):
            env.step(np.zeros(1, np.float32))
        assert abs(env.energy() - e0) < 1e-6 * max(1.0, abs(e0))
    env = PhysicsEnv("spring", seed=1)
    x0 = env.reset()["obs"].astype(np.float64)
    x = env.step(np.zeros(1, np.float32))[0]["obs"]
    exact = [
        x0[0] * math.cos(0.2) + x0[1] * math.sin(0.2),
        x0[1] * math.cos(0.2) - x0[0] * math.sin(0.2),
    ]
    assert np.allclose(x, exact, atol=1e-6)
    pix = PhysicsEnv("pendulum", obs="pixels", seed=0)
    frames = pix.reset()["obs"]
    assert frames.shape == (2, 28, 28) and frames.dtype == np.uint8 and frames.max() > 200
    assert np.abs(frames[0].astype(int) - frames[1]).max() > 50  # the first pair moves too
    torque = PhysicsEnv("torque_pendulum", dt=0.05, init="bottom", seed=0)
    torque.reset()
    for _ in range(20):
        torque.step(np.ones(1, np.float32))
    assert torque.energy() > 0.5  # the torque does work


def test_hnn_kind_saves_and_reloads(tmp_path) -> None:
    model = _hnn()
    model.save_pretrained(tmp_path / "m")
    again = create_world_model(str(tmp_path / "m"))
    x = torch.randn(3, 2)
    assert torch.equal(
        model.transition(x, torch.zeros(3, 1)), again.transition(x, torch.zeros(3, 1))
    )


def test_gym_pendulum_is_pendulum_v1_in_canonical_coordinates() -> None:
    gymnasium = pytest.importorskip("gymnasium")
    env = PhysicsEnv("gym_pendulum", dt=0.05, seed=0)
    env.reset()
    ref = gymnasium.make("Pendulum-v1").unwrapped
    ref.reset(seed=0)
    ref.state = env.state.copy()
    for u in (0.5, -1.0, 1.0):
        obs, reward, _, _ = env.step(np.array([u], np.float32))
        _, ref_reward, *_ = ref.step(np.array([2 * u]))
        assert np.allclose(obs["obs"], ref.state, atol=1e-6) and reward == pytest.approx(ref_reward)
    with pytest.raises(ConfigError, match="Pendulum-v1"):
        PhysicsEnv("gym_pendulum", dt=0.1)


def test_double_pendulum_start_ranges_and_the_wrapped_lnn_baseline() -> None:
    # the LNN reference's training states: angles in [0, 2 pi), speeds in [-10, 10]
    env = PhysicsEnv("double_pendulum", dt=0.01, angle_range=[0, 2 * math.pi],
                     speed_range=[-10, 10], seed=0)  # fmt: skip
    starts = np.stack([env.reset()["obs"] for _ in range(200)])
    assert starts[:, :2].min() >= 0 and starts[:, :2].max() < 2 * math.pi
    assert starts[:, :2].max() > 6 and np.abs(starts[:, 2:]).max() > 9.5
    narrow = np.stack([PhysicsEnv("double_pendulum", seed=s).reset()["obs"] for s in range(50)])
    assert np.abs(narrow[:, :2]).max() <= math.pi / 2 and np.abs(narrow[:, 2:]).max() <= 0.5
    for bad in ([1.0], [2.0, 1.0], [0.0, float("inf")]):
        with pytest.raises(ConfigError, match="speed_range"):
            PhysicsEnv("double_pendulum", speed_range=bad)
    # the LNN's baseline MLP sees wrapped angles too (the reference's baseline_eom)
    torch.manual_seed(0)
    x, turn = torch.randn(5, 4), torch.tensor([2 * math.pi, -4 * math.pi, 0.0, 0.0])
    for baseline in (False, True):
        model = create_world_model("physics:lnn", hidden_dim=8, baseline=baseline, dt=0.01)
        field = model.time_derivative(x)
        assert torch.allclose(model.time_derivative(x + turn), field, atol=1e-4)


def test_pixel_metrics_expose_a_dead_field() -> None:
    """A PixelHNN whose field is zero keeps its start energy exactly (energy MSE at the read-out's
    frame-0 error) but predicts no motion: its short-horizon pixel error is exactly that of
    holding the first frame pair still, which the slow test's liveness check rejects."""
    from worldflux.models.physics.analysis import pixel_rollout_metrics

    torch.manual_seed(0)
    model = create_world_model("physics:pixel_hnn", hidden_dim=8, ae_hidden_dim=16).eval()
    env = PhysicsEnv("pendulum", obs="pixels", seed=0)
    live = pixel_rollout_metrics(model, env, episodes=2, steps=6, short=4)
    assert live["pixel_mse_short"] != live["still_pixel_mse_short"]
    assert live["readout_energy_mse"] >= 0 and np.isfinite(list(live.values())).all()
    with torch.no_grad():
        for p in model.field_net.parameters():
            p.zero_()
    dead = pixel_rollout_metrics(model, env, episodes=2, steps=6, short=4)
    assert dead["pixel_mse_short"] == pytest.approx(dead["still_pixel_mse_short"], rel=1e-12)
    assert dead["final_energy_drift"] == 0.0
