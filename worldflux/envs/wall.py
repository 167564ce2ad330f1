"""Two-rooms / wall: PLDM's goal-reaching point environment, numpy only.

The task of Sobal et al. 2025 (vladisai/PLDM @ cbaf674, ``pldm_envs/wall/wall.py`` ``DotWall``,
facts only): a dot moves in a square arena split by a vertical wall with one door; each episode
starts the dot in one room and puts the goal in the other. Observations are two uint8 channels:
the dot drawn as a Gaussian blob (``dot_std`` 1.3 px) and the walls (arena border and middle
wall without the door). The goal observation is the same picture with the dot at the goal. An
episode succeeds when the mean squared position error is below 1 (PLDM's ``error_threshold``),
i.e. the dot is within sqrt(2) px of the goal.

Differences from the reference: actions are in ``[-1, 1]^2`` and scaled by ``max_step`` (the
reference takes displacements up to 2.45 px directly), and collisions are resolved by moving in
sub-steps of at most half a pixel and stopping before the first blocked one (the reference
intersects the segment with each wall and adds noise).

Axis legend: ``x`` column, ``y`` row, in pixels.
"""

from __future__ import annotations

import numpy as np

from worldflux.envs.base import SINGLE, Env, EnvSpec, Obs, ObsSpace
from worldflux.errors import ConfigError

#: Behaviour policies of the offline data (:meth:`Wall.behaviour_action`).
BEHAVIOURS = ("uniform", "directed")
#: PLDM's step-length distribution (mean 1.0, std 0.4, truncated to [0.2, 1.8] px) in units of
#: its planning step (2.45 px), so that it scales with ``max_step``.
STEP_MEAN, STEP_STD, STEP_LOW, STEP_HIGH = 1.0 / 2.45, 0.4 / 2.45, 0.2 / 2.45, 1.8 / 2.45


class Wall(Env):
    """A dot to move through the door of a wall onto a goal in the other room.

    Goal convention (every goal-reaching environment): :meth:`goal_observation` returns the goal
    as an observation in the same format as :meth:`reset` and :meth:`step`, fixed for the
    episode; ``spec.extras["goal"]`` is ``True``.

    Args:
        size: image side in pixels (65 in PLDM).
        max_step: displacement in pixels of a full action (PLDM's ``max_step_norm`` 2.45).
        max_steps: steps before truncation (PLDM evaluates 200).
        wall_width: middle wall thickness in pixels (3).
        door_y: row of the door's centre (PLDM: 10 at size 65); ``None`` scales 10/64 to ``size``.
        door_space: half height of the door in pixels (4).
        border: index + 1 of the border wall rows/columns (PLDM ``border_wall_loc`` 5).
        dot_std: standard deviation of the dot's Gaussian blob in pixels.
        cross: start and goal in different rooms (PLDM's evaluation); ``False`` draws both
            anywhere (for data collection).
        behaviour: the offline data's behaviour policy (:meth:`behaviour_action`, what
            ``python -m worldflux.collect`` with ``policy=random`` uses): ``"uniform"`` random
            actions, or ``"directed"``, PLDM's directed random walks.
        door_rate: with ``"directed"``, the fraction of episodes aimed through the door
            (PLDM's ``cross_wall_rate`` 0.08).
        seed: seed of the start and goal positions.
    """

    def __init__(
        self,
        size: int = 65,
        max_step: float = 2.45,
        max_steps: int = 200,
        wall_width: int = 3,
        door_y: int | None = None,
        door_space: int = 4,
        border: int = 5,
        dot_std: float = 1.3,
        cross: bool = True,
        behaviour: str = "uniform",
        door_rate: float = 0.0,
        seed: int | None = None,
    ) -> None:
        if size < 16 or max_step <= 0 or max_steps < 1 or wall_width < 1 or door_space < 1:
            raise ConfigError(
                f"Wall needs size >= 16, max_step > 0, max_steps >= 1, wall_width >= 1 and "
                f"door_space >= 1; got size={size}, max_step={max_step}, max_steps={max_steps}, "
                f"wall_width={wall_width}, door_space={door_space}"
            )
        if behaviour not in BEHAVIOURS:
            raise ConfigError(f"Wall behaviour must be one of {BEHAVIOURS}, got {behaviour!r}")
        if not 0.0 <= door_rate <= 1.0 or (door_rate > 0 and behaviour != "directed"):
            raise ConfigError(
                f"Wall door_rate must be in [0, 1] and needs behaviour 'directed', got "
                f"door_rate={door_rate}, behaviour={behaviour!r}"
            )
        if not 1 <= border < size // 4:
            raise ConfigError(f"Wall border must be in [1, size // 4), got {border}")
        self.size, self.max_step, self.max_steps = int(size), float(max_step), int(max_steps)
        self.wall_x = self.size // 2
        self.half_width = wall_width // 2
        self.door_y = int(round(10 * (size - 1) / 64)) if door_y is None else int(door_y)
        self.door_space, self.border = int(door_space), int(border)
        self.dot_std, self.cross = float(dot_std), bool(cross)
        # free interior: inside the border walls, with a margin of two dot radii (PLDM padding)
        self.lo = self.border - 1 + 2 * self.dot_std
        self.hi = self.size - self.border - 2 * self.dot_std
        if not self.lo < self.door_y < self.hi:
            raise ConfigError(f"Wall door_y must lie inside the arena ({self.lo}, {self.hi})")
        self.spec = EnvSpec(
            {SINGLE: ObsSpace("image", (2, self.size, self.size))},
            "continuous",
            2,
            extras={"goal": True},
        )
        self.behaviour, self.door_rate = behaviour, float(door_rate)
        self._heading = 0.0
        self._rng = np.random.default_rng(seed)
        self._walls = self._render_walls()
        self.position = np.zeros(2, dtype=np.float64)
        self.goal = np.zeros(2, dtype=np.float64)
        self._t = 0

    # ------------------------------------------------------------------ geometry
    def blocked(self, pos: np.ndarray) -> bool:
        """Whether the dot's centre at ``pos (x, y)`` is outside the arena or inside the wall."""
        x, y = float(pos[0]), float(pos[1])
        if not (self.lo <= x <= self.hi and self.lo <= y <= self.hi):
            return True
        in_wall = abs(x - self.wall_x) <= self.half_width + 0.5
        in_door = abs(y - self.door_y) <= self.door_space
        return in_wall and not in_door

    def room(self, pos: np.ndarray) -> int:
        """0 for the left room, 1 for the right one."""
        return int(pos[0] > self.wall_x)

    def _sample_in_room(self, room: int) -> np.ndarray:
        x_lo, x_hi = (self.lo, self.wall_x - self.half_width - 2 * self.dot_std)
        if room == 1:
            x_lo, x_hi = (self.wall_x + self.half_width + 2 * self.dot_std, self.hi)
        return np.array(
            [self._rng.uniform(x_lo, x_hi), self._rng.uniform(self.lo, self.hi)], np.float64
        )

    # ------------------------------------------------------------------ Env
    def reset(self, seed: int | None = None) -> Obs:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        start_room = int(self._rng.integers(2))
        goal_room = 1 - start_room if self.cross else int(self._rng.integers(2))
        self.position = self._sample_in_room(start_room)
        self.goal = self._sample_in_room(goal_room)
        self._t = 0
        if self.behaviour == "directed":
            self._heading = float(self._rng.uniform(0.0, 2 * np.pi))
            if self._rng.random() < self.door_rate:
                self._aim_through_door()
        return self._observe(self.position)

    # ------------------------------------------------------------------ offline behaviour
    def _step_length(self) -> float:
        """A step length in action units: PLDM's truncated normal, relative to its max step."""
        while True:
            x = self._rng.normal(STEP_MEAN, STEP_STD)
            if STEP_LOW <= x <= STEP_HIGH:
                return float(x)

    def _aim_through_door(self) -> None:
        """Start the walk so that it passes the door after a random number of steps.

        PLDM's cross-wall samples: a point in the door (height drawn around the door's centre),
        a heading within 45 degrees of horizontal, left or right, and a start that many mean
        steps back along it.
        """
        door = np.array(
            [
                self.wall_x + self._rng.uniform(-self.half_width, self.half_width),
                self.door_y + np.clip(self._rng.normal(0.0, 0.5), -1, 1) * self.door_space,
            ]
        )
        door[1] = np.clip(door[1], self.lo, self.hi)
        self._heading = float(np.pi * self._rng.integers(2) + self._rng.uniform(-1, 1) * np.pi / 4)
        before = int(self._rng.integers(1, max(2, self.max_steps)))
        unit = np.array([np.cos(self._heading), np.sin(self._heading)])
        start = np.clip(door - before * STEP_MEAN * self.max_step * unit, self.lo, self.hi)
        self.position = door if self.blocked(start) else start

    def behaviour_action(self) -> np.ndarray | None:
        """The next action of the offline behaviour policy (``None``: uniform random actions).

        ``"directed"`` is PLDM's data generator (vladisai/PLDM @ cbaf674,
        ``pldm_envs/wall/data/single.py`` ``generate_actions``, wall config
        ``noise0.yaml``): a heading drawn per episode that turns by von Mises noise
        (concentration 1 / 0.2) each step, and step lengths from a normal (mean 1.0, std 0.4)
        truncated to [0.2, 1.8] px, expressed here relative to PLDM's planning step 2.45 px.
        """
        if self.behaviour != "directed":
            return None
        self._heading += float(self._rng.vonmises(0.0, 1.0 / 0.2))
        length = self._step_length()
        return np.array([np.cos(self._heading), np.sin(self._heading)], np.float32) * length

    def distance(self) -> float:
        """Euclidean distance in pixels from the dot to the goal."""
        return float(np.linalg.norm(self.position - self.goal))

    def success(self) -> bool:
        """PLDM's success test: mean squared position error below 1 px^2."""
        return float(np.mean((self.position - self.goal) ** 2)) < 1.0

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool]:
        action = np.clip(self.check_action(action).astype(np.float64), -1.0, 1.0)
        move = self.max_step * action
        n = max(1, int(np.ceil(np.abs(move).max() / 0.5)))
        for _ in range(n):  # stop before the first sub-step that enters a wall
            nxt = self.position + move / n
            if self.blocked(nxt):
                break
            self.position = nxt
        self._t += 1
        done = self.success()
        reward = -self.distance() / self.size
        return self._observe(self.position), reward, done, self._t >= self.max_steps

    def goal_observation(self) -> Obs:
        """The goal as an observation (see the class docstring's goal convention)."""
        return self._observe(self.goal)

    def render(self) -> np.ndarray:
        """RGB ``(size, size, 3)``: walls grey, dot red, goal green."""
        img = np.zeros((self.size, self.size, 3), dtype=np.uint8)
        img[...] = (self._walls // 2)[..., None]
        img[..., 0] = np.maximum(img[..., 0], self._dot(self.position))
        img[..., 1] = np.maximum(img[..., 1], self._dot(self.goal))
        return img

    # ------------------------------------------------------------------ rendering
    def _render_walls(self) -> np.ndarray:
        ys, xs = np.mgrid[0 : self.size, 0 : self.size]
        wall = (np.abs(xs - self.wall_x) <= self.half_width) & ~(
            np.abs(ys - self.door_y) <= self.door_space
        )
        b = self.border
        wall[:, b - 1] = wall[:, -b] = wall[b - 1, :] = wall[-b, :] = True
        return (wall * 255).astype(np.uint8)

    def _dot(self, pos: np.ndarray) -> np.ndarray:
        ys, xs = np.mgrid[0 : self.size, 0 : self.size]
        d2 = (xs - pos[0]) ** 2 + (ys - pos[1]) ** 2
        return (np.exp(-d2 / (2 * self.dot_std**2)) * 255.0).clip(0, 255).astype(np.uint8)

    def _observe(self, pos: np.ndarray) -> Obs:
        return {SINGLE: np.stack([self._dot(pos), self._walls])}
