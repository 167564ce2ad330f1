"""Atari through ale-py with the Atari 100k protocol (extra ``worldflux[atari]``).

Defaults follow DreamerV3's ``atari100k`` settings (danijar/dreamerv3 ``configs.yaml`` @ e3f0224):
64x64 RGB frames, action repeat 4, no sticky actions (``repeat_action_probability = 0``), the
minimal ("needed") action set, up to 30 random no-ops at reset, the last two frames max-pooled,
unclipped rewards, and episodes cut at 108,000 frames. The budget of the benchmark is 100k agent
steps (400k frames), which is the step count the training loop reports.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worldflux.envs.base import (
    SINGLE,
    Env,
    EnvSpec,
    Obs,
    ObsSpace,
    discrete_index,
    missing_extra,
    resize_image,
)
from worldflux.errors import ConfigError, suggest


def _ale() -> Any:
    try:
        import ale_py
    except ImportError as err:
        raise missing_extra("Atari", "atari", err) from None
    return ale_py


def _rom(ale_py: Any, game: str) -> str:
    import warnings

    import ale_py.roms as roms

    games = list(roms.get_all_rom_ids())
    if game not in games:
        raise ConfigError(f"unknown Atari game {game!r}.{suggest(game, games)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = roms.get_rom_path(game)
    if path is None:
        raise ConfigError(f"the ROM of Atari game {game!r} is not installed with ale-py")
    return str(path)


class Atari(Env):
    """One Atari game (``game`` in snake_case, e.g. ``"pong"``, ``"ms_pacman"``).

    Args:
        game: the ROM name.
        size: ``(H, W)`` of the RGB observation.
        repeat: frames per agent step.
        sticky: sticky actions (probability 0.25) when ``True``.
        actions: ``"needed"`` (minimal action set) or ``"all"`` (18 actions).
        noops: maximum number of random no-op frames at reset.
        length: maximum frames per episode.
        seed: seed of the emulator and the no-ops.
    """

    def __init__(
        self,
        game: str,
        size: tuple[int, int] | list[int] = (64, 64),
        repeat: int = 4,
        sticky: bool = False,
        actions: str = "needed",
        noops: int = 30,
        length: int = 108_000,
        seed: int | None = None,
    ) -> None:
        if actions not in ("needed", "all"):
            raise ConfigError(f"actions must be 'needed' or 'all', got {actions!r}")
        if repeat < 1:
            raise ConfigError(f"repeat must be >= 1, got {repeat}")
        ale_py = _ale()
        self.ale = ale_py.ALEInterface()
        self.ale.setLoggerMode(ale_py.LoggerMode.Error)
        self.ale.setInt("random_seed", int(seed or 0) % (2**31))
        self.ale.setFloat("repeat_action_probability", 0.25 if sticky else 0.0)
        self.ale.setInt("frame_skip", 1)
        self.ale.loadROM(_rom(ale_py, game))
        legal = (
            self.ale.getMinimalActionSet() if actions == "needed" else self.ale.getLegalActionSet()
        )
        self.actions = list(legal)
        self._noop = ale_py.Action.NOOP
        self.size = (int(size[0]), int(size[1]))
        self.repeat, self.noops, self.length = repeat, noops, length
        self._rng = np.random.default_rng(seed)
        self._frames = 0
        self._buffers = [np.zeros((210, 160, 3), np.uint8) for _ in range(2)]
        self.spec = EnvSpec(
            {SINGLE: ObsSpace("image", (3, *self.size))}, "discrete", len(self.actions)
        )

    def reset(self, seed: int | None = None) -> Obs:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.ale.reset_game()
        for _ in range(int(self._rng.integers(self.noops + 1)) if self.noops else 0):
            self.ale.act(self._noop)
            if self.ale.game_over():
                self.ale.reset_game()
        self._frames = 0
        self.ale.getScreenRGB(self._buffers[0])
        self._buffers[1][:] = self._buffers[0]
        return self._observe()

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool]:
        native = self.actions[discrete_index(self.check_action(action))]
        reward = 0.0
        for i in range(self.repeat):
            reward += float(self.ale.act(native))
            self._frames += 1
            if i == self.repeat - 2:  # keep the last two frames for max-pooling
                self.ale.getScreenRGB(self._buffers[1])
            elif i == self.repeat - 1:
                self.ale.getScreenRGB(self._buffers[0])
                if self.repeat == 1:
                    self._buffers[1][:] = self._buffers[0]
            if self.ale.game_over():
                self.ale.getScreenRGB(self._buffers[0])
                self._buffers[1][:] = self._buffers[0]
                break
        over = self.ale.game_over()
        truncated = not over and self._frames >= self.length
        return self._observe(), reward, bool(over), bool(truncated)

    def _observe(self) -> Obs:
        frame = np.maximum(self._buffers[0], self._buffers[1])
        return {SINGLE: resize_image(frame, self.size)}

    def render(self) -> np.ndarray:
        return np.maximum(self._buffers[0], self._buffers[1])
