"""Embedded physical systems (numpy only) for the physics family: accurate integrators, true energy.

Systems (``system=``), states in canonical or Lagrangian coordinates, observed every ``dt``:

- ``spring``: mass-spring ``H = q^2 + p^2`` (hamiltonian-nn @ bcc3622 ``experiment-spring``),
  solved in closed form (a rotation of ``(q, p)`` at angular frequency 2), so it is exact.
- ``pendulum``: ideal pendulum ``H = 3 (1 - cos q) + p^2`` (``experiment-pend``).
- ``double_pendulum``: masses and lengths 1, ``g = 9.8``, state ``(t1, t2, w1, w2)``
  (lagrangian_nns @ 2fc26cb ``experiment_dblpend/physics.py``).
- ``torque_pendulum``: ``H = p^2 / 2 + g (1 - cos q)`` with the torque ``max_torque * u`` as a
  generalised force on ``p``; ``q = 0`` hangs down, the swing-up goal is ``q = pi``.

The non-closed-form systems are integrated with RK4 on ``substeps`` sub-steps per ``dt`` (1e-3 s
by default; errors far below float32 resolution over an episode). Initial states follow the
references: a random direction in ``(q, p)`` scaled to a radius drawn from ``radius``; the double
pendulum's angles and speeds are uniform in ``angle_range`` and ``speed_range`` (defaults: angles
within +-pi/2, speeds within +-0.5; the LNN reference's training states are angles in
``[0, 2 pi)`` and speeds in ``[-10, 10]``, its ``get_derivative_dataset``). ``energy_range``
(ours) keeps only the drawn starts whose energy lies in ``[low, high]`` (rejection sampling, so
the starts are uniform over the part of the box at those energies): with short episodes, training
states that cover the states of given energies, as the reference's uniform box does.
``burn_in: [low, high]`` (ours, autonomous systems) advances each drawn start by a uniform number of
unobserved steps in ``[low, high]`` before the episode begins: with short episodes, training states
spread over the whole of long trajectories from the start distribution.
Autonomous systems take a one-dimensional action that has no effect and give reward 0; the
torque pendulum's reward is the swing-up cost ``-(wrap(q - pi)^2 + 0.1 p^2 + 0.001 tau^2)``.
``gym_pendulum`` is gymnasium's ``Pendulum-v1`` (extra ``worldflux[gym]``) observed in canonical
coordinates ``(theta, theta_dot)`` instead of ``(cos, sin, theta_dot)``: its own dynamics (semi-implicit
Euler, dt 0.05, speed clipped at 8), its torque ``2 u`` and its reward; ``theta = 0`` is upright.
``record_derivative`` (autonomous systems, vector observations) also records the exact time
derivative ``dx/dt`` of every observed state (the true state, before observation noise), which the
references regress (hamiltonian-nn's ``dynamics_fn``, lagrangian_nns' ``analytical_fn``): the
spec's ``extras["state_dot"]`` is the state size, and :class:`~worldflux.envs.vector.VectorEnv`
adds each step's ``state_derivative()`` as ``"state_dot"``, which the replay stores and samples.
``obs="pixels"`` renders the pendulums as two stacked 28 x 28 frames (previous, current), as the
PixelHNN data; the first observation of an episode is the drawn initial state and the state one
unforced ``dt`` later, so every pair carries the velocity.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from worldflux.envs.base import SINGLE, Env, EnvSpec, Obs, ObsSpace
from worldflux.errors import ConfigError

SYSTEMS = ("spring", "pendulum", "double_pendulum", "torque_pendulum", "gym_pendulum")
AUTONOMOUS = ("spring", "pendulum", "double_pendulum")
#: Draws of a double-pendulum start before ``energy_range`` is declared out of the box's reach.
MAX_DRAWS = 10_000


def spring_energy(x: np.ndarray) -> np.ndarray:
    """``H = q^2 + p^2`` of states ``(..., 2)``."""
    return x[..., 0] ** 2 + x[..., 1] ** 2


def pendulum_energy(x: np.ndarray) -> np.ndarray:
    """``H = 3 (1 - cos q) + p^2`` of states ``(..., 2)``."""
    return 3 * (1 - np.cos(x[..., 0])) + x[..., 1] ** 2


def double_pendulum_energy(x: np.ndarray, g: float = 9.8) -> np.ndarray:
    """Total energy ``T + V`` of double-pendulum states ``(..., 4) = (t1, t2, w1, w2)``."""
    t1, t2, w1, w2 = x[..., 0], x[..., 1], x[..., 2], x[..., 3]
    kinetic = 0.5 * w1**2 + 0.5 * (w1**2 + w2**2 + 2 * w1 * w2 * np.cos(t1 - t2))
    potential = -2 * g * np.cos(t1) - g * np.cos(t2)
    return kinetic + potential


def _pendulum_field(x: np.ndarray, tau: float) -> np.ndarray:
    return np.array([2 * x[1], -3 * np.sin(x[0])])


def _double_pendulum_field(x: np.ndarray, tau: float, g: float = 9.8) -> np.ndarray:
    t1, t2, w1, w2 = x
    a1 = 0.5 * np.cos(t1 - t2)
    a2 = np.cos(t1 - t2)
    f1 = -0.5 * w2**2 * np.sin(t1 - t2) - g * np.sin(t1)
    f2 = w1**2 * np.sin(t1 - t2) - g * np.sin(t2)
    return np.array([w1, w2, (f1 - a1 * f2) / (1 - a1 * a2), (f2 - a2 * f1) / (1 - a1 * a2)])


def rk4(f: Callable[[np.ndarray, float], np.ndarray], x: np.ndarray, tau: float, dt: float,
        substeps: int) -> np.ndarray:  # fmt: skip
    """Advance ``x`` by ``dt`` with ``substeps`` classical RK4 steps of ``f(x, tau)`` (float64)."""
    h = dt / substeps
    for _ in range(substeps):
        k1 = f(x, tau)
        k2 = f(x + h / 2 * k1, tau)
        k3 = f(x + h / 2 * k2, tau)
        k4 = f(x + h * k3, tau)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


class PhysicsEnv(Env):
    """One of the embedded physical systems (see the module docstring).

    Args:
        system: ``spring``, ``pendulum``, ``double_pendulum`` or ``torque_pendulum``.
        obs: ``"vector"`` (the state) or ``"pixels"`` (pendulums: two 28 x 28 frames).
        dt: time between observations (> 0).
        substeps: RK4 sub-steps per ``dt`` (systems without closed form).
        max_steps: steps before truncation.
        radius: ``[low, high]`` of the initial radius in ``(q, p)`` (2-d systems).
        noise_std: Gaussian noise on observed states (the dynamics stay exact).
        init: ``"random"`` or ``"bottom"`` (torque pendulum: start hanging, nearly at rest).
        gravity, max_torque: torque pendulum constants.
        angle_range, speed_range: double pendulum: ``[low, high]`` of the uniform initial angles
            and angular speeds (both coordinates).
        energy_range: double pendulum: ``[low, high]`` of the initial energy (``None``: any); starts
            are redrawn from the box until their energy lies in it.
        burn_in: ``[low, high]`` unobserved steps (uniform integer) from the drawn start to the
            episode's first state (autonomous systems; ``None``: none).
        record_derivative: record the exact ``dx/dt`` of each observed state (``state_dot``;
            ``spring``, ``pendulum`` and ``double_pendulum`` with vector observations).
        seed: seed of the initial states and noise.
    """

    def __init__(
        self,
        system: str = "spring",
        obs: str = "vector",
        dt: float = 0.1,
        substeps: int = 100,
        max_steps: int = 30,
        radius: tuple[float, float] | list[float] = (0.1, 1.0),
        noise_std: float = 0.0,
        init: str = "random",
        gravity: float = 10.0,
        max_torque: float = 4.0,
        angle_range: tuple[float, float] | list[float] = (-np.pi / 2, np.pi / 2),
        speed_range: tuple[float, float] | list[float] = (-0.5, 0.5),
        energy_range: tuple[float, float] | list[float] | None = None,
        burn_in: tuple[int, int] | list[int] | None = None,
        record_derivative: bool = False,
        seed: int | None = None,
    ) -> None:
        if system not in SYSTEMS:
            raise ConfigError(f"system must be one of {SYSTEMS}, got {system!r}")
        if obs not in ("vector", "pixels") or (obs == "pixels" and system == "spring"):
            raise ConfigError(f"obs must be 'vector' or 'pixels' (pendulums only), got {obs!r}")
        if not (np.isfinite(dt) and dt > 0):
            raise ConfigError(f"dt (integrator step size) must be a finite number > 0, got {dt}")
        if substeps < 1 or max_steps < 1 or noise_std < 0 or len(radius) != 2:
            raise ConfigError(
                "need substeps >= 1, max_steps >= 1, noise_std >= 0 and radius [low, high]; got "
                f"substeps={substeps}, max_steps={max_steps}, noise_std={noise_std}, radius={radius}"
            )
        for name, rng in (("angle_range", angle_range), ("speed_range", speed_range)):
            if len(rng) != 2 or not (np.isfinite(rng).all() and rng[0] <= rng[1]):
                raise ConfigError(f"{name} must be finite [low, high] with low <= high, got {rng}")
        if energy_range is not None and (
            system != "double_pendulum"
            or len(energy_range) != 2
            or np.isnan(energy_range).any()
            or not energy_range[0] <= energy_range[1]
        ):
            raise ConfigError(
                "energy_range must be [low, high] with low <= high (double_pendulum only), got "
                f"{energy_range} for system={system!r}"
            )
        if burn_in is not None and (
            system not in AUTONOMOUS or len(burn_in) != 2 or not 0 <= burn_in[0] <= burn_in[1]
        ):
            raise ConfigError(
                f"burn_in must be [low, high] steps with 0 <= low <= high (autonomous systems "
                f"{AUTONOMOUS} only), got {burn_in} for system={system!r}"
            )
        if init not in ("random", "bottom"):
            raise ConfigError(f"init must be 'random' or 'bottom', got {init!r}")
        if record_derivative and (system not in AUTONOMOUS or obs != "vector"):
            raise ConfigError(
                f"record_derivative needs an autonomous system {AUTONOMOUS} (a forced system's "
                f"derivative depends on the next action) and vector observations, got "
                f"system={system!r}, obs={obs!r}"
            )
        self.system, self.obs_kind, self.dt, self.substeps = system, obs, float(dt), int(substeps)
        self.max_steps, self.radius, self.noise_std = int(max_steps), tuple(radius), noise_std
        self.init, self.gravity, self.max_torque = init, float(gravity), float(max_torque)
        self.angle_range, self.speed_range = tuple(angle_range), tuple(speed_range)
        self.energy_range = None if energy_range is None else tuple(map(float, energy_range))
        self.burn_in = None if burn_in is None else (int(burn_in[0]), int(burn_in[1]))
        self._gym = self._make_gym() if system == "gym_pendulum" else None
        dim = 4 if system == "double_pendulum" else 2
        space = ObsSpace("image", (2, 28, 28)) if obs == "pixels" else ObsSpace("vector", (dim,))
        extras = {"state_dot": dim} if record_derivative else {}
        self.spec = EnvSpec({SINGLE: space}, "continuous", 1, extras=extras)
        self._rng = np.random.default_rng(seed)
        self.state = np.zeros(dim)
        self._frame = np.zeros((28, 28), dtype=np.uint8)
        self._t = 0

    def _make_gym(self) -> object:
        from worldflux.envs.base import missing_extra

        try:
            import gymnasium
        except ImportError as err:
            raise missing_extra("gym_pendulum", "gym", err) from err
        env = gymnasium.make("Pendulum-v1").unwrapped
        if abs(self.dt - env.dt) > 1e-12:
            raise ConfigError(f"gym_pendulum steps dt={env.dt} (Pendulum-v1's), got dt={self.dt}")
        self.max_torque = float(env.max_torque)
        return env

    # ------------------------------------------------------------------ physics
    def energy(self, x: np.ndarray | None = None) -> np.ndarray:
        """The true energy of ``x`` (default: the current state)."""
        x = self.state if x is None else np.asarray(x, dtype=np.float64)
        if self.system == "spring":
            return spring_energy(x)
        if self.system == "pendulum":
            return pendulum_energy(x)
        if self.system == "double_pendulum":
            return double_pendulum_energy(x)
        if self.system == "gym_pendulum":  # theta'' = 15 sin(theta) + 3 u, theta = 0 upright
            return 0.5 * x[..., 1] ** 2 + 15.0 * (np.cos(x[..., 0]) - 1)
        return 0.5 * x[..., 1] ** 2 + self.gravity * (1 - np.cos(x[..., 0]))

    def advance(self, x: np.ndarray, tau: float = 0.0) -> np.ndarray:
        """The state ``dt`` after ``x`` under the (held) torque ``tau``."""
        x = np.asarray(x, dtype=np.float64)
        if self.system == "spring":
            c, s = np.cos(2 * self.dt), np.sin(2 * self.dt)
            return np.array([c * x[0] + s * x[1], c * x[1] - s * x[0]])
        if self.system == "pendulum":
            return rk4(_pendulum_field, x, tau, self.dt, self.substeps)
        if self.system == "double_pendulum":
            return rk4(_double_pendulum_field, x, tau, self.dt, self.substeps)
        if self._gym is not None:
            self._gym.state = x.copy()  # type: ignore[attr-defined]
            self._gym.step(np.array([tau]))  # type: ignore[attr-defined]
            return np.array(self._gym.state, dtype=np.float64)  # type: ignore[attr-defined]
        g = self.gravity
        return rk4(lambda y, u: np.array([y[1], -g * np.sin(y[0]) + u]), x, tau, self.dt,
                   self.substeps)  # fmt: skip

    def state_derivative(self, x: np.ndarray | None = None) -> np.ndarray:
        """The exact ``dx/dt`` (float32) of ``x`` (default: the current state); autonomous systems."""
        x = self.state if x is None else np.asarray(x, dtype=np.float64)
        if self.system == "spring":  # H = q^2 + p^2: (dH/dp, -dH/dq)
            out = np.array([2 * x[1], -2 * x[0]])
        elif self.system == "pendulum":
            out = _pendulum_field(x, 0.0)
        elif self.system == "double_pendulum":
            out = _double_pendulum_field(x, 0.0)
        else:
            raise ConfigError(f"state_derivative needs an autonomous system, got {self.system!r}")
        return out.astype(np.float32)

    def _initial(self) -> np.ndarray:
        if self.system == "double_pendulum":
            for _ in range(MAX_DRAWS):
                angles = self._rng.uniform(*self.angle_range, 2)
                x = np.concatenate([angles, self._rng.uniform(*self.speed_range, 2)])
                if self.energy_range is None:
                    return x
                low, high = self.energy_range
                if low <= double_pendulum_energy(x) <= high:
                    return x
            raise ConfigError(
                f"no double-pendulum start with energy in {self.energy_range} in {MAX_DRAWS} draws "
                f"from angle_range={self.angle_range}, speed_range={self.speed_range}"
            )
        if self.system == "gym_pendulum":  # Pendulum-v1's reset: theta in [-pi, pi], speed [-1, 1]
            upright = self.init == "bottom"
            theta = (
                np.pi + self._rng.uniform(-0.1, 0.1)
                if upright
                else self._rng.uniform(-np.pi, np.pi)
            )
            return np.array([theta, 0.0 if upright else self._rng.uniform(-1.0, 1.0)])
        if self.system == "torque_pendulum" and self.init == "bottom":
            return np.array([self._rng.uniform(-0.1, 0.1), 0.0])
        if self.system == "torque_pendulum":
            return np.array([self._rng.uniform(-np.pi, np.pi), self._rng.uniform(-2.0, 2.0)])
        direction = self._rng.uniform(-1, 1, 2)
        scale = self._rng.uniform(*self.radius)
        return direction / np.sqrt((direction**2).sum()) * scale

    # ------------------------------------------------------------------ Env
    def reset(self, seed: int | None = None) -> Obs:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.state = self._initial()
        if self.burn_in is not None:  # unobserved steps: the episode starts mid-trajectory
            for _ in range(int(self._rng.integers(self.burn_in[0], self.burn_in[1] + 1))):
                self.state = self.advance(self.state)
        self._t = 0
        if self.obs_kind != "pixels":
            return self._observe(self._frame)
        # the first pair must carry the velocity too: the initial state's frame, then the frame
        # one unforced dt later; the episode goes on from the later state
        previous = self._draw(self.state)
        self.state = self.advance(self.state)
        self._frame = self._draw(self.state)
        return self._observe(previous)

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool]:
        action = self.check_action(action)
        tau = 0.0
        if self.system in ("torque_pendulum", "gym_pendulum"):
            tau = float(np.clip(action[0], -1, 1)) * self.max_torque
        reward = 0.0
        if self.system in ("torque_pendulum", "gym_pendulum"):
            # Pendulum-v1's cost; the torque pendulum's goal angle is pi, the gym one's 0
            goal = np.pi if self.system == "torque_pendulum" else 0.0
            err = np.remainder(self.state[0] - goal + np.pi, 2 * np.pi) - np.pi
            reward = -float(err**2 + 0.1 * self.state[1] ** 2 + 0.001 * tau**2)
        self.state = self.advance(self.state, tau)
        self._t += 1
        previous = self._frame
        if self.obs_kind == "pixels":  # drawing costs more than the physics; vectors skip it
            self._frame = self._draw(self.state)
        return self._observe(previous), reward, False, self._t >= self.max_steps

    def render(self) -> np.ndarray:
        frame = self._draw(self.state, size=64)
        return np.repeat(frame[..., None], 3, axis=-1)

    def _observe(self, previous: np.ndarray) -> Obs:
        if self.obs_kind == "pixels":
            return {SINGLE: np.stack([previous, self._frame])}
        x = self.state + self.noise_std * self._rng.standard_normal(self.state.shape)
        return {SINGLE: x.astype(np.float32)}

    def _draw(self, x: np.ndarray, size: int = 28) -> np.ndarray:
        """The pendulum(s) as a grey ``size x size`` frame: rods from the pivot, bob at the end."""
        if self.system == "spring":
            return np.zeros((size, size), dtype=np.uint8)
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
        ys, xs = (ys + 0.5) / size * 2 - 1, (xs + 0.5) / size * 2 - 1
        arms = [x[0]] if self.system != "double_pendulum" else [x[0], x[1]]
        length = 0.8 / len(arms)
        start, img = np.zeros(2), np.zeros((size, size))
        for angle in arms:
            end = start + length * np.array([np.sin(angle), np.cos(angle)])  # y grows downward
            d = end - start
            t = np.clip(((xs - start[0]) * d[0] + (ys - start[1]) * d[1]) / (d @ d), 0, 1)
            dist = np.hypot(xs - start[0] - t * d[0], ys - start[1] - t * d[1])
            img = np.maximum(img, np.exp(-((dist / 0.08) ** 2)))
            start = end
        return (img * 255).round().astype(np.uint8)
