"""Environments that ship with the base install (numpy only).

:class:`Catch` is the default training environment, so ``python -m worldflux.train`` runs on a
fresh machine: balls fall one after another down a ``rows x cols`` grid and the agent moves a
paddle along the bottom row to catch them (+1 for a catch, -1 for a miss; the episode ends after
``balls`` balls). A random policy scores about ``-0.6 * balls``, a perfect one ``+balls``, so
learning is easy to see in the returns. Observations are the grid rendered as an RGB image
(``obs="image"``) or the positions as a vector (``obs="vector"``); the paddle is steered by three
discrete actions (left, stay, right) or by one continuous action whose sign and magnitude pick the
move (``action="continuous"``), so both the DreamerV3 and the TD-MPC2 families can train on it.

:class:`Reach` is a goal-reaching point mass (vector or image observations) whose
``goal_observation()`` returns the goal as an observation, for goal planners.

:class:`Dummy` environments (discrete/continuous x image/vector) produce deterministic
observations in microseconds for tests.
"""

from __future__ import annotations

import numpy as np

from worldflux.envs.base import SINGLE, Env, EnvSpec, Obs, ObsSpace, discrete_index
from worldflux.errors import ConfigError

#: RGB colours of the background, the ball and the paddle.
_COLOURS = np.array([[0, 0, 0], [255, 80, 40], [60, 200, 255]], dtype=np.uint8)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {choices}, got {value!r}")


class Catch(Env):
    """Catch falling balls with a paddle (the embedded default environment).

    Args:
        obs: ``"image"`` (``(3, size, size)`` uint8) or ``"vector"`` (ball row, ball column,
            paddle column, each scaled to ``[-1, 1]``).
        action: ``"discrete"`` (3 one-hot actions) or ``"continuous"`` (1 value; below -1/3 moves
            left, above 1/3 moves right).
        rows, cols: grid size.
        balls: balls per episode; an episode lasts ``balls * (rows - 1)`` steps.
        size: image side in pixels.
        seed: seed of the ball positions.
    """

    def __init__(
        self,
        obs: str = "image",
        action: str = "discrete",
        rows: int = 8,
        cols: int = 5,
        balls: int = 4,
        size: int = 64,
        seed: int | None = None,
    ) -> None:
        _check_choice("obs", obs, ("image", "vector"))
        _check_choice("action", action, ("discrete", "continuous"))
        if rows < 3 or cols < 2 or balls < 1 or size < max(rows, cols):
            raise ConfigError(
                f"Catch needs rows >= 3, cols >= 2, balls >= 1 and size >= max(rows, cols); "
                f"got rows={rows}, cols={cols}, balls={balls}, size={size}"
            )
        self.rows, self.cols, self.balls, self.size = rows, cols, balls, size
        self.obs_kind = obs
        space = ObsSpace("image", (3, size, size)) if obs == "image" else ObsSpace("vector", (3,))
        dim = 3 if action == "discrete" else 1
        self.spec = EnvSpec({SINGLE: space}, action, dim)
        self._rng = np.random.default_rng(seed)
        self._ball = np.zeros(2, dtype=np.int64)
        self._paddle = cols // 2
        self._caught = 0

    def reset(self, seed: int | None = None) -> Obs:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._paddle = self.cols // 2
        self._caught = 0
        self._drop()
        return self._observe()

    def _drop(self) -> None:
        self._ball[:] = (0, self._rng.integers(self.cols))

    def _move(self, action: np.ndarray) -> int:
        if self.spec.action_kind == "discrete":
            return discrete_index(action) - 1
        value = float(np.clip(action[0], -1.0, 1.0))
        return -1 if value < -1 / 3 else (1 if value > 1 / 3 else 0)

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool]:
        action = self.check_action(action)
        self._paddle = int(np.clip(self._paddle + self._move(action), 0, self.cols - 1))
        self._ball[0] += 1
        reward, done = 0.0, False
        if self._ball[0] == self.rows - 1:
            reward = 1.0 if self._ball[1] == self._paddle else -1.0
            self._caught += 1
            done = self._caught >= self.balls
            if not done:
                self._drop()
        return self._observe(), reward, done, False

    def _grid(self) -> np.ndarray:
        grid = np.zeros((self.rows, self.cols), dtype=np.int64)
        grid[self._ball[0], self._ball[1]] = 1
        grid[self.rows - 1, self._paddle] = 2
        return grid

    def render(self) -> np.ndarray:
        grid = self._grid()
        ys = np.arange(self.size) * self.rows // self.size
        xs = np.arange(self.size) * self.cols // self.size
        return _COLOURS[grid[ys][:, xs]]

    def _observe(self) -> Obs:
        if self.obs_kind == "image":
            return {SINGLE: np.ascontiguousarray(self.render().transpose(2, 0, 1))}
        scale = np.array([self.rows - 1, self.cols - 1, self.cols - 1], dtype=np.float32)
        pos = np.array([self._ball[0], self._ball[1], self._paddle], dtype=np.float32)
        return {SINGLE: (2.0 * pos / scale - 1.0).astype(np.float32)}


class Dummy(Env):
    """A deterministic environment for tests (discrete/continuous x image/vector).

    The observation encodes the step counter (image pixels equal ``t % 256``, vector entries equal
    ``t / episode_length``), the reward is ``1`` when the first action component is positive and
    ``0`` otherwise, and every episode lasts ``episode_length`` steps and ends in a terminal state.

    Args:
        obs: ``"image"`` or ``"vector"``.
        action: ``"discrete"`` or ``"continuous"``.
        action_dim: number of actions (discrete) or action size (continuous).
        episode_length: steps per episode.
        image_size: image side in pixels.
        vector_dim: vector size.
        seed: unused (the environment is deterministic); accepted for a uniform signature.
    """

    def __init__(
        self,
        obs: str = "vector",
        action: str = "discrete",
        action_dim: int = 4,
        episode_length: int = 16,
        image_size: int = 16,
        vector_dim: int = 8,
        seed: int | None = None,
    ) -> None:
        _check_choice("obs", obs, ("image", "vector"))
        _check_choice("action", action, ("discrete", "continuous"))
        if episode_length < 1:
            raise ConfigError(f"episode_length must be >= 1, got {episode_length}")
        space = (
            ObsSpace("image", (3, image_size, image_size))
            if obs == "image"
            else ObsSpace("vector", (vector_dim,))
        )
        self.spec = EnvSpec({SINGLE: space}, action, int(action_dim))
        self.episode_length = episode_length
        self._t = 0

    def reset(self, seed: int | None = None) -> Obs:
        self._t = 0
        return self._observe()

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool]:
        action = self.check_action(action)
        self._t += 1
        positive = (
            discrete_index(action) == 0 if self.spec.action_kind == "discrete" else action[0] > 0
        )
        return self._observe(), float(positive), self._t >= self.episode_length, False

    def render(self) -> np.ndarray:
        space = self.spec.obs[SINGLE]
        side = space.shape[1] if space.kind == "image" else 16
        return np.full((side, side, 3), self._t % 256, dtype=np.uint8)

    def _observe(self) -> Obs:
        space = self.spec.obs[SINGLE]
        if space.kind == "image":
            return {SINGLE: np.full(space.shape, self._t % 256, dtype=np.uint8)}
        return {SINGLE: np.full(space.shape, self._t / self.episode_length, dtype=np.float32)}


class Reach(Env):
    """Move a point mass to a goal in the square ``[-1, 1]^2`` (a goal-reaching environment).

    Each episode draws a start and a goal position. The action ``(2,)`` in ``[-1, 1]`` moves the
    point by ``step_size * action`` (clipped to the square); the reward is minus the distance to
    the goal, and the episode ends (terminated) within ``radius`` of the goal or is truncated
    after ``max_steps``. Observations show the point only: its position (``obs="vector"``,
    ``(2,)``) or a ``(3, size, size)`` uint8 image with the point drawn as a 2 x 2 square
    (``obs="image"``), or with ``blob > 0`` as a Gaussian blob of standard deviation ``blob``
    (in position units) centred on the exact position, so that sub-pixel moves and distances
    show in the pixels (image distances then shrink smoothly as the point nears the goal).

    Goal convention (every goal-reaching environment): :meth:`goal_observation` returns the goal
    as an observation in the same format as :meth:`reset` and :meth:`step` (what the agent would
    observe at the goal), fixed for the episode; ``spec.extras["goal"]`` is ``True``.

    Args:
        obs: ``"vector"`` or ``"image"``.
        step_size: distance moved by a full action.
        radius: success distance.
        max_steps: steps before truncation.
        size: image side in pixels.
        blob: standard deviation of the drawn Gaussian blob (0: the 2 x 2 square).
        seed: seed of the start and goal positions.
    """

    def __init__(
        self,
        obs: str = "vector",
        step_size: float = 0.2,
        radius: float = 0.1,
        max_steps: int = 50,
        size: int = 16,
        blob: float = 0.0,
        seed: int | None = None,
    ) -> None:
        _check_choice("obs", obs, ("image", "vector"))
        if step_size <= 0 or radius <= 0 or max_steps < 1 or size < 4 or not blob >= 0:
            raise ConfigError(
                f"Reach needs step_size > 0, radius > 0, max_steps >= 1, size >= 4 and blob >= 0; "
                f"got step_size={step_size}, radius={radius}, max_steps={max_steps}, size={size}, "
                f"blob={blob}"
            )
        self.obs_kind, self.size, self.blob = obs, size, float(blob)
        self.step_size, self.radius, self.max_steps = step_size, radius, max_steps
        space = ObsSpace("image", (3, size, size)) if obs == "image" else ObsSpace("vector", (2,))
        self.spec = EnvSpec({SINGLE: space}, "continuous", 2, extras={"goal": True})
        self._rng = np.random.default_rng(seed)
        self.position = np.zeros(2, dtype=np.float32)
        self.goal = np.zeros(2, dtype=np.float32)
        self._t = 0

    def reset(self, seed: int | None = None) -> Obs:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.position = self._rng.uniform(-0.9, 0.9, 2).astype(np.float32)
        self.goal = self._rng.uniform(-0.9, 0.9, 2).astype(np.float32)
        self._t = 0
        return self._observe(self.position)

    def distance(self) -> float:
        """Distance from the point to the goal."""
        return float(np.linalg.norm(self.position - self.goal))

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool]:
        action = self.check_action(action)
        move = self.step_size * np.clip(action, -1.0, 1.0)
        self.position = np.clip(self.position + move, -1.0, 1.0).astype(np.float32)
        self._t += 1
        dist = self.distance()
        return self._observe(self.position), -dist, dist < self.radius, self._t >= self.max_steps

    def goal_observation(self) -> Obs:
        """The goal as an observation (see the class docstring's goal convention)."""
        return self._observe(self.goal)

    def _image(self, pos: np.ndarray) -> np.ndarray:
        if self.blob > 0:
            return self._blob(pos, _COLOURS[2])
        img = np.zeros((self.size, self.size, 3), dtype=np.uint8)
        # pixel centre of the point; a 2x2 square keeps sub-cell moves visible
        cx, cy = ((pos + 1.0) / 2.0 * (self.size - 2)).round().astype(int)
        img[cy : cy + 2, cx : cx + 2] = _COLOURS[2]
        return img

    def _blob(self, pos: np.ndarray, colour: np.ndarray) -> np.ndarray:
        centres = (np.arange(self.size) + 0.5) / self.size * 2.0 - 1.0  # pixel centres
        d2 = (centres[None, :] - pos[0]) ** 2 + (centres[:, None] - pos[1]) ** 2
        weight = np.exp(-d2 / (2.0 * self.blob**2))[..., None]
        return (weight * colour).round().astype(np.uint8)

    def render(self) -> np.ndarray:
        img = self._image(self.position)
        if self.blob > 0:
            return np.maximum(img, self._blob(self.goal, _COLOURS[1]))
        gx, gy = ((self.goal + 1.0) / 2.0 * (self.size - 2)).round().astype(int)
        img[gy : gy + 2, gx : gx + 2] = np.maximum(img[gy : gy + 2, gx : gx + 2], _COLOURS[1])
        return img

    def _observe(self, pos: np.ndarray) -> Obs:
        if self.obs_kind == "image":
            return {SINGLE: np.ascontiguousarray(self._image(pos).transpose(2, 0, 1))}
        return {SINGLE: pos.astype(np.float32).copy()}
