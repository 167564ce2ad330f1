"""Closed loop: does the model help an agent decide? Returns or success rates over N episodes.

Three kinds of agent play the same seeded episodes of the comparison's environment:

- **the shared planner** (``closed_loop.planner``, MPPI or CEM from :mod:`worldflux.planning`, the
  same settings for every model) at each budget of ``closed_loop.budgets`` (sampled action
  sequences per iteration). It drives a model by its declared capabilities: toward the goal
  observation (objective ``goal``) for a ``goal`` model in a goal-reaching environment, toward
  the predicted return (objective ``return``) for a ``plan`` model; other models cannot be
  driven (skipped with the reason, or an error with ``closed_loop.drive: all``);
- **the model's own agent** (``act``; with the goal for ``goal`` models in a goal environment);
- **random actions** (the floor every agent should clear).

Each row reports the mean return with a 95% confidence interval (normal approximation,
``1.96 s / sqrt(n)``) and, in goal-reaching environments, the success rate (episodes that ended
by reaching the goal, i.e. terminated rather than truncated) with its Wilson 95% interval.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from worldflux.compare.data import CompareData
from worldflux.compare.models import Entry, capabilities
from worldflux.errors import ConfigError
from worldflux.planning import PlanningError, build_planner, require


@dataclass
class Episodes:
    """One closed-loop row: an agent's episodes.

    Attributes:
        name: the model (``"random"`` for the random agent).
        agent: ``"<planner> (<objective>)"``, ``"own agent"`` or ``"random"``.
        budget: the planner's samples per iteration (``None`` for other agents).
        returns: episode returns.
        successes: per-episode goal reached (goal-reaching environments only).
    """

    name: str
    agent: str
    budget: int | None = None
    returns: list[float] = field(default_factory=list)
    successes: list[bool] | None = None

    def mean_ci(self) -> tuple[float, float]:
        """Mean return and the half-width of its 95% interval (``nan`` for one episode)."""
        x = np.asarray(self.returns, dtype=np.float64)
        half = 1.96 * x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else float("nan")
        return float(x.mean()), float(half)

    def success_ci(self) -> tuple[float, float, float] | None:
        """Success rate and its Wilson 95% interval ``(rate, low, high)``."""
        if self.successes is None:
            return None
        n, k, z = len(self.successes), sum(self.successes), 1.96
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return p, max(0.0, centre - half), min(1.0, centre + half)


def planner_node(name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The shared planner's config: ``conf/planner/<name>.yaml`` plus ``overrides``."""
    from omegaconf import OmegaConf

    from worldflux.catalog import conf_dir

    file = conf_dir() / "planner" / f"{name}.yaml"
    if not file.is_file():
        known = sorted(p.stem for p in (conf_dir() / "planner").glob("*.yaml"))
        raise ConfigError(f"closed_loop.planner={name!r} is not a planner; valid: {known}")
    node = OmegaConf.to_container(OmegaConf.load(file), resolve=True)
    assert isinstance(node, dict)
    return {**node, **dict(overrides)}


def objective_for(entry: Entry, goal_env: bool) -> str:
    """The planner objective that drives ``entry``: from its declared capabilities, else from the
    planning protocol it implements (:mod:`worldflux.planning.protocol`).

    In a goal-reaching environment a model plans toward the goal when it declares ``goal`` or
    implements goal planning (``plan_encode``, ``plan_next``); otherwise (and in other
    environments) toward the predicted return when it declares ``plan`` or implements return
    planning (``plan_next``, ``plan_reward``, ``plan_value``).

    Raises:
        PlanningError: the model offers neither (naming the model and what is missing).
    """
    caps = capabilities(entry.model)
    candidates = (["goal"] if goal_env else []) + ["return"]
    missing: list[str] = []
    for objective in candidates:
        declared = {"goal": "goal", "return": "plan"}[objective]
        try:
            require(entry.model, objective, "the shared planner")
        except PlanningError as err:
            missing.append(f"capability {declared!r} ({err})")
            continue
        return objective
    raise PlanningError(
        f"the shared planner cannot drive model {entry.name!r}: it does not offer "
        f"{' or '.join(missing)}; it declares {sorted(caps)}"
    )


def _encoder(model: Any) -> Any:
    fn = getattr(model, "plan_encode", None)
    if callable(fn):
        return lambda obs: fn(obs, None)
    return model.encode


def _to_action(action: torch.Tensor, data: CompareData) -> np.ndarray:
    act = action.detach().float().cpu().numpy().reshape(1, -1)
    if data.spec.action_kind == "discrete":  # planners search a box; take the strongest index
        return np.eye(data.spec.action_dim, dtype=np.float32)[act.argmax(-1)]
    return np.clip(act, -1.0, 1.0)


def play(
    data: CompareData, episodes: int, seed: int, policy: Any
) -> tuple[list[float], list[bool]]:
    """Play ``episodes`` episodes; ``policy(obs, goal, first) -> (1, A) numpy`` or ``None``
    (random). Returns the returns and whether each episode terminated (reached the goal)."""
    from worldflux.envs.registry import make_vector_env
    from worldflux.training.collector import obs_to_torch, random_actions

    if data.env is None:
        raise ConfigError("closed loop needs an environment: set env=<environment>")
    envs = make_vector_env({**data.env, "num_envs": 1}, seed=seed)
    rng = np.random.default_rng(seed)
    returns: list[float] = []
    reached: list[bool] = []
    step: Any = None
    try:
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(seed)
            while len(returns) < episodes:
                if step is None:
                    action = None
                elif policy is None:
                    action = random_actions(data.spec, 1, rng)
                else:
                    obs = obs_to_torch(step["obs"], data.spec, "cpu")
                    goal = obs_to_torch(step["goal"], data.spec, "cpu") if "goal" in step else None
                    action = policy(obs, goal, torch.as_tensor(step["first"]))
                step = envs.step(action)
                if step["last"][0]:
                    reached.append(bool(step["terminal"][0]))
                returns.extend(ep.score for ep in envs.pop_finished())
    finally:
        envs.close()
    return returns[:episodes], reached[:episodes]


def planner_policy(entry: Entry, data: CompareData, node: Mapping[str, Any], objective: str) -> Any:
    """A policy that plans with the shared planner on ``entry``'s model."""
    model = entry.model
    planner = build_planner({**node, "objective": objective}, action_dim=data.spec.action_dim)
    encode = _encoder(model)
    memory: dict[str, Any] = {}

    def policy(obs: Any, goal: Any, first: torch.Tensor) -> np.ndarray:
        obs = _move(obs, model.device)
        z = encode(obs)
        goal_z = encode(_move(goal, model.device)) if objective == "goal" else None
        prev = None if bool(first.any()) else memory.get("mean")
        result = planner.plan(model, z, prev_mean=prev, eval_mode=True, goal=goal_z)
        memory["mean"] = result.mean
        return _to_action(result.action, data)

    return policy


def own_policy(entry: Entry, data: CompareData) -> Any:
    """A policy from the model's own ``act`` (toward the goal for ``goal`` models)."""
    model = entry.model
    use_goal = data.goal and "goal" in capabilities(model)
    params = inspect.signature(model.act).parameters
    takes = set(params) if not any(p.kind is p.VAR_KEYWORD for p in params.values()) else None
    memory: dict[str, Any] = {"state": None}

    def policy(obs: Any, goal: Any, first: torch.Tensor) -> np.ndarray:
        kwargs: dict[str, Any] = {"first": first.to(model.device), "eval_mode": True}
        if use_goal:
            kwargs["goal"] = _move(goal, model.device)
        if takes is not None:
            kwargs = {k: v for k, v in kwargs.items() if k in takes}
        action, memory["state"] = model.act(_move(obs, model.device), memory["state"], **kwargs)
        return _to_action(action, data)

    return policy


def _move(x: Any, device: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: v.to(device) for k, v in x.items()}
    return x.to(device)


def evaluate(
    entries: list[Entry],
    data: CompareData,
    *,
    episodes: int,
    seed: int,
    planner: str,
    planner_args: Mapping[str, Any],
    budgets: list[int],
    drive: str = "auto",
    own_agent: bool = True,
) -> tuple[list[Episodes], list[str]]:
    """Every closed-loop row, and notes on what could not run (models the planner cannot drive).

    Raises:
        ConfigError: bad settings, or (``drive="all"``) a model the planner cannot drive.
    """
    if episodes < 1:
        raise ConfigError(f"closed_loop.episodes must be >= 1, got {episodes}")
    if drive not in ("auto", "all", "none"):
        raise ConfigError(f"closed_loop.drive must be auto, all or none, got {drive!r}")
    if any(int(b) < 2 for b in budgets):
        raise ConfigError(f"closed_loop.budgets must be sample counts >= 2, got {list(budgets)}")
    node = planner_node(planner, planner_args)
    rows: list[Episodes] = []
    notes: list[str] = []
    succ = data.goal

    def row(name: str, agent: str, budget: int | None, policy: Any) -> Episodes:
        returns, reached = play(data, episodes, seed, policy)
        return Episodes(name, agent, budget, returns, reached if succ else None)

    if drive == "all":  # refuse before any episode is played
        for entry in entries:
            try:
                objective_for(entry, data.goal)
            except PlanningError as err:
                raise ConfigError(str(err)) from None
    rows.append(row("random", "random", None, None))
    for entry in entries:
        if drive != "none":
            try:
                objective = objective_for(entry, data.goal)
            except PlanningError as err:
                notes.append(str(err))
            else:
                for budget in budgets:
                    elites = max(1, min(int(node.get("num_elites", 8)), int(budget) // 4))
                    args = {**node, "num_samples": int(budget), "num_elites": elites}
                    if "num_pi_trajs" in args:
                        args["num_pi_trajs"] = min(int(args["num_pi_trajs"]), int(budget) // 4)
                    policy = planner_policy(entry, data, args, objective)
                    rows.append(row(entry.name, f"{planner} ({objective})", int(budget), policy))
        caps = capabilities(entry.model)
        if own_agent and ("act" in caps or (data.goal and "goal" in caps)):
            rows.append(row(entry.name, "own agent", None, own_policy(entry, data)))
    return rows, notes
