"""DeepMind Control Suite through dm_control (extra ``worldflux[dmc]``, which pins ``mujoco<4``).

State observations are the task's observation dict flattened into one float32 vector (keys in
sorted order); pixel observations are rendered by MuJoCo at ``size`` from the domain's default
camera (camera 2 for quadruped, 0 otherwise, as DreamerV3 and TD-MPC2 do). Rendering headless needs
an OpenGL backend: set ``MUJOCO_GL=egl`` (GPU, or Mesa's software EGL) or ``MUJOCO_GL=osmesa``
(CPU) in the environment before starting. dm_control chooses its backend once, on first import, so
when ``MUJOCO_GL`` is unset worldflux sets ``egl`` before that import if rendering is requested or
the process is headless and libEGL is present (dm_control's own default, GLFW, needs a display).
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from typing import Any

import numpy as np

from worldflux.envs.base import SINGLE, Env, EnvSpec, Obs, ObsSpace, missing_extra, rescale
from worldflux.errors import ConfigError, suggest

OBS_MODES = ("state", "pixels", "both")


def _headless() -> bool:
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _suite(render: bool) -> Any:
    # dm_control picks its OpenGL backend once, when it is first imported (also by state-only
    # tasks), and defaults to GLFW, which cannot render without a display. So choose EGL before
    # that first import whenever rendering is requested or the process is headless and has libEGL.
    unset = "MUJOCO_GL" not in os.environ and "dm_control._render" not in sys.modules
    if unset and (render or (_headless() and ctypes.util.find_library("EGL"))):
        os.environ["MUJOCO_GL"] = "egl"
    try:
        from dm_control import suite
    except ImportError as err:
        raise missing_extra("DeepMind Control", "dmc", err) from None
    if render:
        from dm_control import _render

        backend = _render.BACKEND
        if backend is None or (backend == "glfw" and _headless()):
            raise ConfigError(
                f"DeepMind Control pixels need a headless OpenGL backend, but dm_control was "
                f"imported with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} (backend {backend!r}); "
                "set MUJOCO_GL=egl (GPU or Mesa EGL) or MUJOCO_GL=osmesa before starting"
            )
    return suite


class DMC(Env):
    """One DeepMind Control task, e.g. ``task="walker_walk"`` (domain, underscore, task).

    Args:
        task: ``<domain>_<task>``; the domain is the part before the first underscore except for
            ``ball_in_cup`` and ``point_mass``.
        obs: ``"state"``, ``"pixels"`` or ``"both"`` (``{"image": ..., "vector": ...}``).
        size: ``(H, W)`` of pixel observations.
        action_repeat: physics steps per agent step (rewards summed).
        camera: camera id; ``-1`` picks the domain default.
        seed: task random seed.
    """

    def __init__(
        self,
        task: str,
        obs: str = "state",
        size: tuple[int, int] | list[int] = (64, 64),
        action_repeat: int = 2,
        camera: int = -1,
        seed: int | None = None,
    ) -> None:
        if obs not in OBS_MODES:
            raise ConfigError(f"env.obs must be one of {OBS_MODES}, got {obs!r}")
        suite = _suite(obs != "state")
        domain, _, name = (
            task.replace("ball_in_cup", "ball-in-cup")
            .replace("point_mass", "point-mass")
            .partition("_")
        )
        domain = domain.replace("-", "_")
        valid = [f"{d}_{t}" for d, t in suite.ALL_TASKS]
        if (domain, name) not in suite.ALL_TASKS:
            raise ConfigError(f"unknown DeepMind Control task {task!r}.{suggest(task, valid)}")
        self.env = suite.load(domain, name, task_kwargs={"random": seed})
        self.mode, self.size, self.repeat = obs, tuple(size), int(action_repeat)
        self.camera = (2 if domain == "quadruped" else 0) if camera < 0 else camera
        spec = self.env.action_spec()
        self._low, self._high = spec.minimum.astype(np.float32), spec.maximum.astype(np.float32)
        dim = sum(int(np.prod(v.shape)) for v in self.env.observation_spec().values())
        spaces = {"image": ObsSpace("image", (3, *self.size)), "vector": ObsSpace("vector", (dim,))}
        if obs == "state":
            spaces = {SINGLE: spaces["vector"]}
        elif obs == "pixels":
            spaces = {SINGLE: spaces["image"]}
        self.spec = EnvSpec(spaces, "continuous", int(spec.shape[0]))

    def close(self) -> None:
        self.env.close()

    def _observe(self, step: Any) -> Obs:
        out: Obs = {}
        if self.mode != "pixels":
            parts = [
                np.asarray(step.observation[k], np.float32).reshape(-1)
                for k in sorted(step.observation)
            ]
            out["vector"] = np.concatenate(parts)
        if self.mode != "state":
            out["image"] = np.ascontiguousarray(self.render().transpose(2, 0, 1))
        return out if self.mode == "both" else {SINGLE: next(iter(out.values()))}

    def reset(self, seed: int | None = None) -> Obs:
        if seed is not None:
            self.env.task.random.seed(seed)
        return self._observe(self.env.reset())

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool]:
        native = rescale(self.check_action(action), self._low, self._high)
        reward = 0.0
        for _ in range(self.repeat):
            step = self.env.step(native)
            reward += float(step.reward or 0.0)
            if step.last():
                break
        # DMC episodes end by time limit only: truncated, never terminal (discount stays 1).
        terminal = step.last() and step.discount == 0
        return self._observe(step), reward, bool(terminal), bool(step.last() and not terminal)

    def render(self) -> np.ndarray:
        h, w = self.size
        return self.env.physics.render(h, w, camera_id=self.camera)
