"""The ``api_version="v0.2"`` compatibility adapter (deprecated).

The v0.2 interface took time-major action sequences ``(H, B, A)`` in ``rollout`` and named the
posterior update ``update(state, action, obs)``. The adapter maps those calls onto the current
:class:`~worldflux.core.model.WorldModel` methods and forwards everything else unchanged.
"""

from __future__ import annotations

from typing import Any


class LegacyWorldModelV02:
    """Wraps a v3 world model behind the v0.2 call conventions."""

    def __init__(self, model: Any) -> None:
        self._model = model

    @property
    def model(self) -> Any:
        """The wrapped v3 model."""
        return self._model

    def rollout(self, state: Any, actions: Any) -> Any:
        """Imagine over time-major ``actions (H, B, A)`` (v0.2 order)."""
        return self._model.rollout(state, actions.transpose(0, 1))

    def update(self, state: Any, action: Any, obs: Any) -> Any:
        """One posterior step: v0.2's ``update`` is ``observe`` on a length-1 sequence."""
        import torch

        first = torch.zeros(action.shape[0], 1, dtype=torch.bool, device=action.device)
        obs_seq = (
            {k: v.unsqueeze(1) for k, v in obs.items()}
            if isinstance(obs, dict)
            else obs.unsqueeze(1)
        )
        _, last = self._model.observe(obs_seq, action.unsqueeze(1), first, state)
        return last

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._model(*args, **kwargs)

    def __repr__(self) -> str:
        return f"LegacyWorldModelV02({self._model.__class__.__name__})"
