"""Scene3D: a room with coloured primitives, ray-cast from any camera pose (numpy only).

The 3-D test world of the ``renderer3d`` family: a box-shaped room (checkered floor, four walls of
different colours, a ceiling) holding a few spheres and boxes, rendered by analytic ray casting
with Lambert shading. Every step returns ``views`` images taken from ``views`` cameras at random
poses around the room's centre together with those poses, so a model can learn a scene
representation that it renders from viewpoints it was never shown. The agent pushes the first
object across the floor; the reward is minus its distance to the centre of the room.

Observations (``views = V``):

- ``"views"``: ``(3 V, size, size)`` uint8, the V RGB images stacked along channels;
- ``"poses"``: ``(7 V,)`` float32, per view the camera position ``(x, y, z)`` and
  ``(cos yaw, sin yaw, cos pitch, sin pitch)`` (the GQN viewpoint layout).

Camera convention (shared with :mod:`worldflux.models.renderer3d.rays`): ``y`` is up, the camera
looks along ``(cos p cos y, sin p, cos p sin y)``, no roll, a pinhole with horizontal and vertical
field of view ``fov`` (degrees).

Axis legend: ``N`` rays, ``V`` views, ``K`` objects.
"""

from __future__ import annotations

import numpy as np

from worldflux.envs.base import Env, EnvSpec, Obs, ObsSpace, discrete_index
from worldflux.errors import ConfigError, ShapeError

#: Half extent of the room in x and z, and its height.
ROOM_HALF, ROOM_HEIGHT = 3.0, 3.0
#: Point the cameras look at (plus noise), near the objects.
LOOK_AT = np.array([0.0, 0.35, 0.0])
POSE_DIM = 7
_LIGHT = np.array([0.4, 1.0, 0.3]) / np.linalg.norm([0.4, 1.0, 0.3])
_WALLS = np.array(  # -x, +x, -z, +z walls, then ceiling
    [[200, 170, 120], [120, 170, 210], [170, 210, 140], [210, 140, 190], [235, 235, 235]],
    dtype=np.float64,
)
_OBJECT_COLOURS = np.array([[230, 60, 50], [60, 200, 80], [60, 90, 230], [240, 200, 40]], float)
#: Discrete actions: stay, -x, +x, -z, +z.
_MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.float64)


def pose_vector(position: np.ndarray, yaw: float, pitch: float) -> np.ndarray:
    """The 7-d pose ``(x, y, z, cos yaw, sin yaw, cos pitch, sin pitch)``."""
    trig = [np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)]
    return np.concatenate([position, trig]).astype(np.float32)


def camera_rays(pose: np.ndarray, size: int, fov: float) -> tuple[np.ndarray, np.ndarray]:
    """Origins and unit directions ``(size * size, 3)`` of a pose's pixels, row-major."""
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (POSE_DIM,) or not np.isfinite(pose).all():
        raise ShapeError(f"a camera pose must be 7 finite numbers, got {pose!r}")
    cy, sy, cp, sp = pose[3:]
    forward = np.array([cp * cy, sp, cp * sy])
    right = np.array([-forward[2], 0.0, forward[0]])
    right /= max(np.linalg.norm(right), 1e-8)
    up = np.cross(right, forward)
    half = np.tan(np.radians(fov) / 2)
    grid = (np.arange(size) + 0.5) / size * 2 - 1
    u = grid[None, :] * half  # columns go right
    v = -grid[:, None] * half  # rows go down
    dirs = forward + u[..., None] * right + v[..., None] * up
    dirs = dirs.reshape(-1, 3)
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    return np.broadcast_to(pose[:3], dirs.shape).copy(), dirs


class Scene3D(Env):
    """A ray-cast room with spheres and boxes, seen from several random cameras per step.

    Args:
        views: cameras (images and poses) per observation.
        size: image side in pixels.
        objects: number of primitives (alternating sphere, box), 1 to 4.
        action: ``"continuous"`` (2-d push of the first object in ``[-1, 1]``) or
            ``"discrete"`` (5 actions: stay, -x, +x, -z, +z).
        fov: field of view of every camera in degrees.
        episode_length: steps per episode (the episode is truncated after them).
        seed: seed of object placement and camera poses.
    """

    def __init__(
        self,
        views: int = 3,
        size: int = 32,
        objects: int = 3,
        action: str = "continuous",
        fov: float = 60.0,
        episode_length: int = 50,
        seed: int | None = None,
    ) -> None:
        if action not in ("continuous", "discrete"):
            raise ConfigError(f"action must be 'continuous' or 'discrete', got {action!r}")
        if views < 1 or size < 4 or not 1 <= objects <= 4 or episode_length < 1:
            raise ConfigError(
                "Scene3D needs views >= 1, size >= 4, 1 <= objects <= 4 and episode_length >= 1; "
                f"got views={views}, size={size}, objects={objects}, "
                f"episode_length={episode_length}"
            )
        if not 10.0 <= fov <= 150.0:
            raise ConfigError(f"fov must be in [10, 150] degrees, got {fov}")
        self.num_views, self.size, self.num_objects = views, size, objects
        self.fov, self.episode_length = float(fov), episode_length
        obs = {
            "views": ObsSpace("image", (3 * views, size, size)),
            "poses": ObsSpace("vector", (POSE_DIM * views,)),
        }
        self.spec = EnvSpec(obs, action, 2 if action == "continuous" else 5)
        self._rng = np.random.default_rng(seed)
        self._pos = np.zeros((objects, 2))
        self._t = 0
        # Radii: spheres' radius, boxes' half extent.
        self._radius = np.array([0.45, 0.4, 0.35, 0.3][:objects])
        self._is_box = np.arange(objects) % 2 == 1

    # ------------------------------------------------------------------ episode
    def reset(self, seed: int | None = None) -> Obs:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._t = 0
        for k in range(self.num_objects):  # rejection sampling keeps objects apart
            for _ in range(100):
                p = self._rng.uniform(-1.6, 1.6, size=2)
                if all(np.linalg.norm(p - self._pos[j]) > 1.0 for j in range(k)):
                    break
            self._pos[k] = p
        return self._observe()

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool]:
        action = self.check_action(action)
        if self.spec.action_kind == "discrete":
            move = _MOVES[discrete_index(action)]
        else:
            move = np.clip(action, -1.0, 1.0).astype(np.float64)
        limit = ROOM_HALF - 0.6
        self._pos[0] = np.clip(self._pos[0] + 0.25 * move, -limit, limit)
        self._t += 1
        reward = -float(np.linalg.norm(self._pos[0])) / ROOM_HALF
        return self._observe(), reward, False, self._t >= self.episode_length

    # ------------------------------------------------------------------ cameras
    def random_pose(self) -> np.ndarray:
        """A camera on a ring around the room's centre, looking near the objects."""
        yaw = self._rng.uniform(0, 2 * np.pi)
        radius = self._rng.uniform(2.0, 2.6)
        position = np.array(
            [radius * np.cos(yaw), self._rng.uniform(0.6, 2.0), radius * np.sin(yaw)]
        )
        target = LOOK_AT + self._rng.normal(0, 0.15, size=3)
        d = target - position
        return pose_vector(position, np.arctan2(d[2], d[0]), np.arctan2(d[1], np.hypot(d[0], d[2])))

    def render_pose(self, pose: np.ndarray) -> np.ndarray:
        """The ``(size, size, 3)`` uint8 image of the current scene from ``pose``."""
        origin, dirs = camera_rays(pose, self.size, self.fov)
        return self._shade(origin, dirs).reshape(self.size, self.size, 3)

    def _observe(self) -> Obs:
        poses = [self.random_pose() for _ in range(self.num_views)]
        images = [self.render_pose(p).transpose(2, 0, 1) for p in poses]
        return {"views": np.concatenate(images, 0), "poses": np.concatenate(poses)}

    def render(self) -> np.ndarray:
        """The current views side by side, ``(size, V * size, 3)``, for videos."""
        views = self._observe()["views"].reshape(self.num_views, 3, self.size, self.size)
        return np.concatenate(list(views.transpose(0, 2, 3, 1)), axis=1)

    # ------------------------------------------------------------------ ray casting
    def _shade(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Colour ``(N, 3)`` uint8 of rays with origins ``o`` and directions ``d`` ``(N, 3)``."""
        t, normal, colour = self._room(o, d)
        for k in range(self.num_objects):
            centre = np.array([self._pos[k, 0], self._radius[k], self._pos[k, 1]])
            hit_t, hit_n = (_box if self._is_box[k] else _sphere)(o, d, centre, self._radius[k])
            closer = hit_t < t
            t = np.where(closer, hit_t, t)
            normal = np.where(closer[:, None], hit_n, normal)
            colour = np.where(closer[:, None], _OBJECT_COLOURS[k], colour)
        light = 0.35 + 0.65 * np.clip(normal @ _LIGHT, 0.0, 1.0)
        return np.clip(colour * light[:, None], 0, 255).astype(np.uint8)

    def _room(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exit distance, inward normal and colour of the room's surfaces (camera inside)."""
        lo = np.array([-ROOM_HALF, 0.0, -ROOM_HALF])
        hi = np.array([ROOM_HALF, ROOM_HEIGHT, ROOM_HALF])
        safe = np.where(np.abs(d) < 1e-9, 1e-9, d)
        exits = np.where(safe > 0, (hi - o) / safe, (lo - o) / safe)  # (N, 3) per axis
        axis = np.argmin(exits, axis=1)
        t = exits[np.arange(len(d)), axis]
        positive = safe[np.arange(len(d)), axis] > 0
        normal = np.zeros_like(d)
        normal[np.arange(len(d)), axis] = np.where(positive, -1.0, 1.0)
        wall = np.where(axis == 0, positive.astype(int), 2 + positive.astype(int))
        colour = _WALLS[np.where(axis == 1, 4, wall)]
        hit = o + t[:, None] * d
        checker = (np.floor(hit[:, 0]) + np.floor(hit[:, 2])) % 2
        floor = (axis == 1) & ~positive
        colour = np.where(floor[:, None], np.where(checker[:, None] > 0, 90.0, 150.0), colour)
        return t, normal, colour


def _sphere(o: np.ndarray, d: np.ndarray, c: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    oc = o - c
    b = np.einsum("nk,nk->n", oc, d)
    disc = b * b - (np.einsum("nk,nk->n", oc, oc) - r * r)
    t = -b - np.sqrt(np.maximum(disc, 0.0))
    t = np.where((disc >= 0) & (t > 1e-6), t, np.inf)
    n = (o + np.where(np.isfinite(t), t, 0.0)[:, None] * d - c) / r
    return t, n


def _box(o: np.ndarray, d: np.ndarray, c: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    safe = np.where(np.abs(d) < 1e-9, 1e-9, d)
    t1, t2 = (c - h - o) / safe, (c + h - o) / safe
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    axis = np.argmax(near, axis=1)
    t_near, t_far = near.max(axis=1), far.min(axis=1)
    t = np.where((t_far >= t_near) & (t_near > 1e-6), t_near, np.inf)
    n = np.zeros_like(d)
    n[np.arange(len(d)), axis] = -np.sign(safe[np.arange(len(d)), axis])
    return t, n
