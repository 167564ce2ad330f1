"""Compare world models side by side on the same data: fidelity, decisions, cost.

``python -m worldflux.compare`` (:mod:`worldflux.compare.app`) runs a comparison from the command
line; :func:`compare` runs one from Python (models may then also be ``(name, WorldModel)``
pairs). The modules: :mod:`~worldflux.compare.data` (episodes, split, dataset hash),
:mod:`~worldflux.compare.models` (build, load, train the same budget),
:mod:`~worldflux.compare.open_loop`, :mod:`~worldflux.compare.closed_loop`,
:mod:`~worldflux.compare.cost` and :mod:`~worldflux.compare.report`. See ``docs/compare.md``.
"""

from __future__ import annotations

from worldflux.compare.app import compare, run_section

__all__ = ["compare", "run_section"]
