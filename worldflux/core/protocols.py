"""The typed contract of a family: what it can do, what it returns, and the capability check.

A family lists the capabilities it implements in its ``capabilities`` class attribute. Each
capability is a :class:`typing.Protocol` below (the methods and the keywords they must accept);
:func:`check_capabilities` runs when the factory builds a model and refuses a family that declares
a capability it does not implement (a method left as :class:`~worldflux.core.model.WorldModel`'s
"unsupported" stub, or missing a keyword), and a capability name nobody knows.

Axis legend: ``B`` batch, ``T`` time, ``H`` horizon, ``A`` action size, ``N`` flat batch of latent
states (planners), ``Z`` latent size.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from worldflux.errors import WorldFluxError, suggest


class CapabilityError(WorldFluxError, TypeError):
    """A family declares a capability it does not implement, or an unknown capability."""


# ---------------------------------------------------------------------------- typed results
@dataclass
class Rollout:
    """Imagined trajectories from a start state.

    Attributes:
        states: the latent states ``(B, H, ...)`` (a tensor or a dict of tensors).
        rewards: predicted rewards ``(B, H)`` or ``None``.
        continues: predicted continue probabilities ``(B, H)`` or ``None``.
        actions: the actions ``(B, H, A)`` that were taken, or ``None``.
    """

    states: Any
    rewards: Tensor | None = None
    continues: Tensor | None = None
    actions: Tensor | None = None


@dataclass
class Prediction:
    """What a family predicts from a latent state.

    Attributes:
        obs: reconstructed observations (a tensor or ``{name: tensor}``), or ``None``.
        reward: predicted reward, or ``None``.
        continues: predicted continue probability, or ``None``.
        value: predicted value (return), or ``None``.
        extra: anything else the family predicts, by name.
    """

    obs: Any = None
    reward: Tensor | None = None
    continues: Tensor | None = None
    value: Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, out: Mapping[str, Any]) -> Prediction:
        """Wrap the ``dict`` that ``decode`` returns (``obs``, ``reward``, ``continue``, ...)."""
        known = {"obs", "reward", "continue", "value"}
        return cls(
            obs=out.get("obs"),
            reward=out.get("reward"),
            continues=out.get("continue"),
            value=out.get("value"),
            extra={k: v for k, v in out.items() if k not in known},
        )


@dataclass
class Sample:
    """Generated observations.

    Attributes:
        obs: samples ``(B, T, ...)`` (a tensor or ``{name: tensor}``).
        num_steps: the number of sampler steps that produced them.
    """

    obs: Any
    num_steps: int


# ---------------------------------------------------------------------------- protocols
@runtime_checkable
class Filtering(Protocol):
    """Posterior filtering over observed sequences (capability ``observe``)."""

    def initial_state(self, batch_size: int) -> Any: ...

    def observe(
        self, obs: Any, action: Tensor, first: Tensor, state: Any = None
    ) -> tuple[Any, Any]: ...


@runtime_checkable
class Encoding(Protocol):
    """Observations to features (capability ``encode``)."""

    def encode(self, obs: Any) -> Tensor: ...


@runtime_checkable
class Training(Protocol):
    """The training loss on a batch of sequences (capability ``loss``)."""

    def loss(self, batch: Mapping[str, Any]) -> Any: ...


@runtime_checkable
class RollingOut(Protocol):
    """Imagination over an action sequence ``(B, H, A)`` (capability ``rollout``)."""

    def rollout(self, state: Any, actions: Tensor) -> Any: ...


@runtime_checkable
class Transition(Protocol):
    """One latent step under an action (capability ``transition``)."""

    def transition(self, state: Any, action: Tensor) -> Any: ...


@runtime_checkable
class Decoding(Protocol):
    """Predictions from a latent state (capability ``decode``)."""

    def decode(self, state: Any) -> Mapping[str, Any]: ...


@runtime_checkable
class Acting(Protocol):
    """A policy or planner (capability ``act``); the keywords come after ``state``."""

    def act(
        self,
        obs: Any,
        state: Any = None,
        *,
        first: Tensor | None = None,
        eval_mode: bool = False,
        task: Any = None,
    ) -> tuple[Tensor, Any]: ...


@runtime_checkable
class GoalConditioned(Protocol):
    """Acting toward a goal observation and scoring latents against it (capability ``goal``).

    ``score_goal`` returns ``(B,)`` scores, higher is closer to the goal.
    """

    def act(self, obs: Any, state: Any = None, *, goal: Any = None) -> tuple[Tensor, Any]: ...

    def score_goal(self, state: Any, goal: Any) -> Tensor: ...


@runtime_checkable
class Sampling(Protocol):
    """Generation with a sampler of a given number of steps (capability ``sample``)."""

    def sample(
        self, context: Any, *, num_steps: int, generator: torch.Generator | None = None
    ) -> Sample: ...


@runtime_checkable
class Planning(Protocol):
    """Reward and value predictions on flat latent batches (capability ``plan``).

    The same methods :class:`worldflux.planning.protocol.LatentPlanningModel` names.
    """

    def plan_next(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor: ...

    def plan_reward(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor: ...

    def plan_value(self, z: Tensor, action: Tensor, task: Tensor | None) -> Tensor: ...


@dataclass(frozen=True)
class Capability:
    """A capability name, the methods it needs and the keywords they must accept."""

    name: str
    protocol: type
    methods: tuple[str, ...]
    keywords: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


#: Every capability a family may declare.
CAPABILITIES: dict[str, Capability] = {
    c.name: c
    for c in (
        Capability("initial_state", Filtering, ("initial_state",)),
        Capability("encode", Encoding, ("encode",)),
        Capability("observe", Filtering, ("initial_state", "observe")),
        Capability("transition", Transition, ("transition",)),
        Capability("decode", Decoding, ("decode",)),
        Capability("rollout", RollingOut, ("rollout",)),
        Capability("loss", Training, ("loss",)),
        Capability("act", Acting, ("act",), {"act": ("first", "eval_mode", "task")}),
        Capability("goal", GoalConditioned, ("act", "score_goal"), {"act": ("goal",)}),
        Capability("sample", Sampling, ("sample",), {"sample": ("num_steps", "generator")}),
        Capability("plan", Planning, ("plan_next", "plan_reward", "plan_value")),
    )
}


def check_capabilities(cls: type) -> None:
    """Refuse a family class whose declared ``capabilities`` it does not implement.

    A method counts as implemented when the class defines it other than as the base class's
    "unsupported" stub, and it accepts the capability's keywords (by name or ``**kwargs``).

    Raises:
        CapabilityError: naming the family, the capability and what is missing.
    """
    from worldflux.core.model import WorldModel

    declared: frozenset[str] = getattr(cls, "capabilities", frozenset())
    for name in sorted(declared):
        cap = CAPABILITIES.get(name)
        if cap is None:
            raise CapabilityError(
                f"{cls.__name__} declares the unknown capability {name!r}."
                f"{suggest(name, CAPABILITIES)} Known: {sorted(CAPABILITIES)}"
            )
        for method in cap.methods:
            impl = getattr(cls, method, None)
            stub = getattr(WorldModel, method, None)
            if not callable(impl) or (stub is not None and impl is stub):
                raise CapabilityError(
                    f"{cls.__name__} declares capability {name!r} but does not implement "
                    f"{method}(); implement it or remove {name!r} from capabilities"
                )
            missing = _missing_keywords(impl, cap.keywords.get(method, ()))
            if missing:
                raise CapabilityError(
                    f"{cls.__name__}.{method}() must accept the keywords {missing} to provide "
                    f"capability {name!r}"
                )


def _missing_keywords(func: Any, keywords: tuple[str, ...]) -> list[str]:
    params = inspect.signature(func).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []
    return [k for k in keywords if k not in params]


__all__ = [
    "CAPABILITIES",
    "Acting",
    "Capability",
    "CapabilityError",
    "Decoding",
    "Filtering",
    "GoalConditioned",
    "Planning",
    "Prediction",
    "Rollout",
    "Sample",
    "Sampling",
    "Transition",
    "check_capabilities",
    "Encoding",
    "RollingOut",
    "Training",
]
