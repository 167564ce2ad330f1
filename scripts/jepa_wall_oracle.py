"""Planner ceiling on two-rooms/wall: the same MPPI with the *true* dynamics and an oracle cost.

A diagnostic for the JEPA learning check (docs/learning.md, "JEPA (PLDM) on two-rooms / wall"):
is a failure to cross the wall the model's or the planner's? The planner
(:class:`worldflux.models.jepa.planning.RunningGoalMPPI`, or the shared MPPI with the last-step
goal cost) plans over the dot's *position* with the environment's exact dynamics (walls, door,
sub-steps) instead of a learned latent, and its cost is the straight-line distance (``euclid``:
what an embedding that is an exact, isometric map of the position gives) or the length of the
shortest path through the door (``geodesic``: a cost that already knows the way round the
wall). The running cost is PLDM's, mean over the 2 "features" of the squared difference. Same horizon, samples, iterations and episode length as
the learning check.

    python scripts/jepa_wall_oracle.py --episodes 20 --max-steps 80

Axis legend: ``N`` flat batch of plans, ``B`` environments.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import Tensor

from worldflux.envs.wall import Wall
from worldflux.models.jepa.planning import RunningGoalMPPI
from worldflux.planning.mppi import MPPIPlanner

#: The 32 x 32 wall of the learning check (tests/models/jepa/test_learning.py WALL).
WALL = {"size": 32, "max_step": 1.5, "door_space": 3, "border": 3, "cross": True}


class TrueWall:
    """The planners' latent interface over positions ``(N, 2)`` with the wall's exact dynamics."""

    def __init__(self, env: Wall, cost: str) -> None:
        self.env, self.cost = env, cost
        self.door = torch.tensor([float(env.wall_x), float(env.door_y)])

    def blocked(self, p: Tensor) -> Tensor:
        e = self.env
        x, y = p[:, 0], p[:, 1]
        out = (x < e.lo) | (x > e.hi) | (y < e.lo) | (y > e.hi)
        in_wall = (x - e.wall_x).abs() <= e.half_width + 0.5
        in_door = (y - e.door_y).abs() <= e.door_space
        return out | (in_wall & ~in_door)

    def step(self, p: Tensor, action: Tensor) -> Tensor:
        move = self.env.max_step * action.clamp(-1, 1)
        n = max(1, int(np.ceil(float(move.abs().max()) / 0.5)))
        stopped = torch.zeros(p.shape[0], dtype=torch.bool)
        for _ in range(n):
            nxt = p + move / n
            stopped = stopped | self.blocked(nxt)
            p = torch.where(stopped[:, None], p, nxt)
        return p

    def distance(self, p: Tensor, goal: Tensor, goal_room: Tensor) -> Tensor:
        """Euclid: straight-line distance ``(N,)``; geodesic: through the door when needed."""
        direct = (p - goal).norm(dim=-1)
        if self.cost == "euclid":
            return direct
        other = (p[:, 0] > self.env.wall_x).long() != goal_room
        via = (p - self.door).norm(dim=-1) + (self.door - goal).norm(dim=-1)
        return torch.where(other, via, direct)

    # planner interface: the latent carries (x, y, goal_room)
    def plan_encode(self, obs: Tensor, task: Tensor | None) -> Tensor:
        return obs

    def plan_next(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor:
        return torch.cat([self.step(z[:, :2], action), z[:, 2:]], -1)


class OracleRunning(RunningGoalMPPI):
    def score(self, model, z, actions, discount, task, goal):  # type: ignore[no-untyped-def]
        cost = z.new_zeros(z.shape[0])
        room = z[:, 2].long()
        for t in range(actions.shape[0]):
            z = model.plan_next(z, actions[t], task)
            cost = cost + model.distance(z[:, :2], goal, room).pow(2) / 2
        return -cost


class OracleLast(MPPIPlanner):
    def score(self, model, z, actions, discount, task, goal):  # type: ignore[no-untyped-def]
        room = z[:, 2].long()
        for t in range(actions.shape[0]):
            z = model.plan_next(z, actions[t], task)
        return -model.distance(z[:, :2], goal, room)


def run(args: argparse.Namespace, cost: str, planner_cls: type) -> dict[str, float]:
    envs = [
        Wall(**WALL, max_steps=args.max_steps, seed=args.seed + i) for i in range(args.episodes)
    ]
    for i, e in enumerate(envs):
        e.reset(seed=args.seed + i)
    model = TrueWall(envs[0], cost)
    planner = planner_cls(
        2,
        horizon=args.horizon,
        iterations=args.iterations,
        num_samples=args.samples,
        num_elites=64,
        num_pi_trajs=0,
        min_std=0.05,
        max_std=1.0,
        temperature=10.0,
        objective="goal",
    )
    goal = torch.tensor(np.stack([e.goal for e in envs]), dtype=torch.float32)
    goal_room = torch.tensor([float(e.room(e.goal)) for e in envs])
    done = np.zeros(len(envs), dtype=bool)
    prev = None
    for _ in range(args.max_steps):
        pos = torch.tensor(np.stack([e.position for e in envs]), dtype=torch.float32)
        z = torch.cat([pos, goal_room[:, None]], -1)
        result = planner.plan(model, z, prev_mean=prev, eval_mode=True, goal=goal)
        prev = result.mean
        for i, e in enumerate(envs):
            if not done[i]:
                done[i] = e.step(result.action[i].numpy().astype(np.float32))[2]
        if done.all():
            break
    return {
        "success": float(done.mean()),
        "final_distance": float(np.mean([e.distance() for e in envs])),
    }


def latent_profile(path: str, pairs: int, seed: int) -> None:
    """How the trained embedding's distance to a goal in the other room tracks the way there.

    For ``pairs`` start/goal pairs in different rooms, encodes the dot along the shortest path
    (start -> door centre -> goal, 1 px apart) and prints the mean PLDM cost (mean squared
    embedding difference to the goal's) in bins of remaining path length, the Spearman rank
    correlation of that cost with the remaining path length and with the straight-line
    distance, and the fraction of paths whose cost falls monotonically (within 5%).
    """
    from worldflux import create_world_model

    model = create_world_model(path)
    env = Wall(**WALL, seed=seed)
    bins: dict[int, list[float]] = {}
    rho_path, rho_line, mono = [], [], 0
    for i in range(pairs):
        env.reset(seed=seed + i)
        door = np.array([env.wall_x, env.door_y], np.float64)
        pts = []
        for a, b in ((env.position.copy(), door), (door, env.goal.copy())):
            n = max(2, int(np.ceil(np.linalg.norm(b - a))))
            pts += [a + (b - a) * k / n for k in range(n)]
        pts.append(env.goal.copy())
        obs = torch.as_tensor(np.stack([env._observe(p)["obs"] for p in pts]))
        with torch.no_grad():
            z = model.encode(obs)
            g = model.encode(torch.as_tensor(env.goal_observation()["obs"])[None])
        cost = (z - g).pow(2).mean(-1).numpy()
        seg = np.r_[0.0, np.linalg.norm(np.diff(np.stack(pts), axis=0), axis=1)]
        remaining = seg.sum() - np.cumsum(seg)
        line = np.linalg.norm(np.stack(pts) - env.goal, axis=1)
        rho_path.append(_spearman(cost, remaining))
        rho_line.append(_spearman(cost, line))
        mono += bool(np.all(np.diff(cost) <= 0.05 * cost.max()))
        for r, c in zip(remaining, cost):
            bins.setdefault(int(r // 4) * 4, []).append(float(c))
    print(f"{pairs} cross-room paths: Spearman(cost, path length left) {np.mean(rho_path):.2f}, ")
    print(f"  Spearman(cost, straight-line distance) {np.mean(rho_line):.2f}, monotone {mono}")
    for k in sorted(bins):
        print(f"  path left {k:2d}-{k + 4:2d} px: cost {np.mean(bins[k]):.3f} (n={len(bins[k])})")


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--max-steps", type=int, default=80)
    p.add_argument("--horizon", type=int, default=32)
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--seed", type=int, default=10_000)
    p.add_argument("--model", help="a trained export: print its latent-distance profile instead")
    args = p.parse_args()
    torch.manual_seed(0)
    if args.model:
        latent_profile(args.model, args.episodes, args.seed)
        return
    for name, cls in (("running", OracleRunning), ("last", OracleLast)):
        for cost in ("euclid", "geodesic"):
            r = run(args, cost, cls)
            print(f"{name:8s} {cost:9s} success {r['success']:.2f} final {r['final_distance']:.1f}")


if __name__ == "__main__":
    main()
