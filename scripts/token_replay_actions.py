"""Diagnostic: what the collector played, window by window, from a run's replay snapshot.

A training run saves its replay next to its checkpoints
(``<run dir>/checkpoints/replay/rank0-update<N>.npz``). This prints, for consecutive windows
of environment steps, how often each action was taken (left / stay / right on Catch), the mean
reward per step and the share of balls caught. After ``ac_start`` the collector plays the
current actor (temperature 1, epsilon 0.01), so the windows show how the actor's own data enter
the replay that the world model keeps training on (IRIS's correction loop).

    python scripts/token_replay_actions.py RUN/checkpoints/replay/rank0-update000004000.npz
    python scripts/token_replay_actions.py SNAPSHOT --window 250

The replay stores at each step the action that led to it, so episode-first steps are skipped.
One environment stream and a replay that never wrapped around (the steps in order) are needed.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def windows(path: str, window: int) -> list[str]:
    """One line per ``window`` environment steps of the snapshot at ``path`` (stream 0)."""
    data = np.load(path, allow_pickle=False)
    actions = data["data/action"][0].argmax(-1)
    rewards = data["data/reward"][0]
    first = data["data/first"][0]
    count = int(data["count"][0])
    total = json.loads(str(data["meta"]))["total"]
    if len(data["count"]) != 1 or total > len(actions):
        raise ValueError(
            f"{path}: one stream whose ring buffer never wrapped around is needed (streams "
            f"{len(data['count'])}, {total} steps written, {len(actions)} kept)"
        )
    lines = []
    for lo in range(0, count, window):
        hi = min(count, lo + window)
        keep = ~first[lo:hi]
        shares = np.bincount(actions[lo:hi][keep], minlength=actions.max() + 1) / keep.sum()
        balls = rewards[lo:hi][rewards[lo:hi] != 0]
        caught = float((balls > 0).mean()) if len(balls) else float("nan")
        lines.append(
            f"env steps {lo}-{hi}: actions {' / '.join(f'{s:.2f}' for s in shares)}, "
            f"reward per step {rewards[lo:hi].mean():+.3f}, caught {caught:.2f} of {len(balls)}"
        )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("snapshot", help="a replay snapshot, checkpoints/replay/rank0-update*.npz")
    p.add_argument("--window", type=int, default=500, help="environment steps per line")
    a = p.parse_args()
    if a.window < 1:
        raise SystemExit("--window must be positive")
    print("\n".join(windows(a.snapshot, a.window)))


if __name__ == "__main__":
    main()
