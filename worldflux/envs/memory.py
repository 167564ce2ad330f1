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

``mode="repeat"`` is the other classic test, "repeat the observation seen ``delay`` steps ago"
(POPGym's RepeatPrevious): every step shows a random symbol (one of ``cues``), and from step
``delay`` on every action is scored, +1 if it names the symbol shown ``delay`` steps before the
current one (``delay=0``: the current symbol), -1 otherwise. An episode lasts ``length`` steps,
``length - delay`` of them scored, so the reward is dense: every scored step is a supervised
example of the memory. The return lies in ``[-(length - delay), length - delay]``; the success
rate is ``(return / (length - delay) + 1) / 2``, chance ``1 / cues``. The vector's last entry
flags the scored steps; images show the symbol's colour.

``mode="cycle"`` scores the same way as ``"repeat"`` but the symbols are not independent: each
episode draws ``delay + 1`` random symbols and shows them over and over (period ``delay + 1``),
so the symbol shown ``delay`` steps ago is also the next one to be shown. Remembering the cycle
then pays twice: a world model needs it to predict the next observation (a dense signal through
its dynamics loss, not only through the answer's reward) and the policy needs it to answer.
Chance is again ``1 / cues``; with more cues the next symbol carries more information
(``log(cues)`` nats), which matters for world models whose KL terms have free nats.
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
    """Recall the cue of the first step after ``delay`` blank steps, or (``mode="repeat"``) name
    the symbol shown ``delay`` steps ago at every step.

    Args:
        cues: number of cues = number of discrete actions (2 to 8).
        delay: blank steps between the cue and the query (``"recall"``), or how many steps back
            the symbol to name was shown (``"repeat"``); >= 0.
        obs: ``"vector"`` (``(cues + 1,)`` float32) or ``"image"`` (``(3, size, size)`` uint8).
        size: image side in pixels.
        seed: seed of the cues.
        mode: ``"recall"`` (one cue, one answer), ``"repeat"`` (a random symbol and an answer
            every step) or ``"cycle"`` (``"repeat"`` with the symbols repeating every
            ``delay + 1`` steps).
        length: steps of a ``"repeat"``/``"cycle"`` episode (> ``delay``); unused by
            ``"recall"``.
    """

    def __init__(
        self,
        cues: int = 2,
        delay: int = 8,
        obs: str = "vector",
        size: int = 16,
        seed: int | None = None,
        mode: str = "recall",
        length: int = 16,
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
        if mode not in ("recall", "repeat", "cycle"):
            raise ConfigError(f"Memory mode must be 'recall', 'repeat' or 'cycle', got {mode!r}")
        if mode != "recall" and (not isinstance(length, int) or length <= delay):
            raise ConfigError(
                f"Memory length must be an int > delay ({delay}) in {mode} mode, got {length!r}"
            )
        self.cues, self.delay, self.obs_kind, self.size = cues, delay, obs, size
        self.mode, self.length = mode, length
        space = (
            ObsSpace("vector", (cues + 1,))
            if obs == "vector"
            else ObsSpace("image", (3, size, size))
        )
        self.spec = EnvSpec({SINGLE: space}, "discrete", cues)
        self._rng = self._make_rng(seed)
        self._cue = 0
        self._t = 0
        self._symbols = np.zeros(0, dtype=np.int64)  # repeat mode: the symbol of every step

    def reset(self, seed: int | None = None) -> Obs:
        if seed is not None:
            self._rng = self._make_rng(seed)
        self._t = 0
        if self.mode != "recall":  # cycle: delay + 1 symbols, tiled over the episode
            drawn = self.delay + 1 if self.mode == "cycle" else self.length + 1
            self._symbols = np.resize(self._rng.integers(self.cues, size=drawn), self.length + 1)
            self._cue = int(self._symbols[0])
            return self._observe()
        self._cue = int(self._rng.integers(self.cues))
        return self._observe()

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool]:
        action = self.check_action(action)
        if self.mode != "recall":
            return self._step_repeat(discrete_index(action))
        query = self._t == self.delay + 1
        self._t += 1
        if query:  # the answer to the query ends the episode
            reward = 1.0 if discrete_index(action) == self._cue else -1.0
            return self._observe(), reward, True, False
        return self._observe(), 0.0, False, False

    def _make_rng(self, seed: int | None) -> np.random.Generator:
        """The symbols' generator. In repeat mode it is a stream of its own: with
        ``default_rng(seed)`` the symbols (one draw a step) would equal the collector's uniformly
        random actions drawn from the same seed, step for step, so random play would be scored
        right far more often than chance. Cycle mode uses the same stream."""
        if self.mode != "recall" and seed is not None:
            return np.random.default_rng([int(seed), 0x4D454D])
        return np.random.default_rng(seed)

    def _step_repeat(self, answer: int) -> tuple[Obs, float, bool, bool]:
        t = self._t
        reward = 0.0
        if t >= self.delay:  # name the symbol shown `delay` steps before step t
            reward = 1.0 if answer == int(self._symbols[t - self.delay]) else -1.0
        self._t = t + 1
        self._cue = int(self._symbols[self._t])
        return self._observe(), reward, self._t == self.length, False

    def _phase(self) -> str:
        if self.mode != "recall":
            return "cue"
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
            if self.mode != "recall" and self._t >= self.delay:
                vec[-1] = 1.0  # the action at this step is scored
        elif phase == "query":
            vec[-1] = 1.0
        return {SINGLE: vec}
