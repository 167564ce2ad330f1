"""A memory task with a controllable delay (numpy only): recall a cue after ``delay`` steps.

Each episode shows one of ``cues`` cues in the first observation only, then ``delay`` blank
observations, then a query observation; the action taken at the query is the answer (+1 if it
names the cue, -1 otherwise) and ends the episode. Actions before the query do nothing, so
nothing in the observations or the agent's own behaviour carries the cue: a policy must hold it
in its recurrent state for ``delay + 1`` steps. Chance is ``1 / cues`` (return
``2 / cues - 1``); the success rate is ``(return + 1) / 2``. An episode lasts ``delay + 2``
steps. This is the "cue, delay, recall" family of memory tests (e.g. POPGym's RepeatFirst and
the T-maze of Bakker 2001), without a maze.

Observations are a vector ``[cue one-hot (cues), query flag]`` or an RGB image whose colour is
the cue (first step), white (query) or black (delay).
"""

from __future__ import annotations

import numpy as np

from worldflux.envs.base import SINGLE, Env, EnvSpec, Obs, ObsSpace, discrete_index
from worldflux.errors import ConfigError

#: Colours of the cues in image observations (up to eight cues).
_CUE_COLOURS = np.array(
    [
        [255, 40, 40],
        [40, 220, 40],
        [60, 90, 255],
        [255, 220, 40],
        [220, 60, 220],
        [40, 220, 220],
        [255, 140, 0],
        [140, 140, 140],
    ],
    dtype=np.uint8,
)


class Memory(Env):
    """Recall the cue of the first step after ``delay`` blank steps.

    Args:
        cues: number of cues = number of discrete actions (2 to 8).
        delay: blank steps between the cue and the query (>= 0).
        obs: ``"vector"`` (``(cues + 1,)`` float32) or ``"image"`` (``(3, size, size)`` uint8).
        size: image side in pixels.
        seed: seed of the cues.
    """

    def __init__(
        self,
        cues: int = 2,
        delay: int = 8,
        obs: str = "vector",
        size: int = 16,
        seed: int | None = None,
    ) -> None:
        if not isinstance(cues, int) or not 2 <= cues <= len(_CUE_COLOURS):
            raise ConfigError(
                f"Memory cues must be an int in [2, {len(_CUE_COLOURS)}], got {cues!r}"
            )
        if not isinstance(delay, int) or delay < 0:
            raise ConfigError(f"Memory delay must be an int >= 0, got {delay!r}")
        if obs not in ("vector", "image"):
            raise ConfigError(f"Memory obs must be 'vector' or 'image', got {obs!r}")
        if not isinstance(size, int) or size < 1:
            raise ConfigError(f"Memory size must be a positive int, got {size!r}")
        self.cues, self.delay, self.obs_kind, self.size = cues, delay, obs, size
        space = (
            ObsSpace("vector", (cues + 1,))
            if obs == "vector"
            else ObsSpace("image", (3, size, size))
        )
        self.spec = EnvSpec({SINGLE: space}, "discrete", cues)
        self._rng = np.random.default_rng(seed)
        self._cue = 0
        self._t = 0

    def reset(self, seed: int | None = None) -> Obs:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._cue = int(self._rng.integers(self.cues))
        self._t = 0
        return self._observe()

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool]:
        action = self.check_action(action)
        query = self._t == self.delay + 1
        self._t += 1
        if query:  # the answer to the query ends the episode
            reward = 1.0 if discrete_index(action) == self._cue else -1.0
            return self._observe(), reward, True, False
        return self._observe(), 0.0, False, False

    def _phase(self) -> str:
        if self._t == 0:
            return "cue"
        return "query" if self._t == self.delay + 1 else "blank"

    def render(self) -> np.ndarray:
        phase = self._phase()
        colour = {"cue": _CUE_COLOURS[self._cue], "query": np.full(3, 255, np.uint8)}.get(
            phase, np.zeros(3, np.uint8)
        )
        return np.broadcast_to(colour, (self.size, self.size, 3)).copy()

    def _observe(self) -> Obs:
        if self.obs_kind == "image":
            return {SINGLE: np.ascontiguousarray(self.render().transpose(2, 0, 1))}
        vec = np.zeros(self.cues + 1, dtype=np.float32)
        phase = self._phase()
        if phase == "cue":
            vec[self._cue] = 1.0
        elif phase == "query":
            vec[-1] = 1.0
        return {SINGLE: vec}
