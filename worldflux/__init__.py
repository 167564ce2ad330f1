"""worldflux: one interface to many world models.

The public factory is four functions::

    from worldflux import create_world_model, list_models, get_model_info, get_config

Importing the package defines names only. torch and lightning are imported when a model is built.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["create_world_model", "list_models", "get_model_info", "get_config", "__version__"]


def create_world_model(model: Any, **kwargs: Any) -> Any:
    """Build a world model; see :func:`worldflux.factory.create_world_model`."""
    from worldflux.factory import create_world_model as _create

    return _create(model, **kwargs)


def list_models(
    verbose: bool = False, maturity: str | None = None, surface: str = "supported"
) -> Any:
    """List presets; see :func:`worldflux.catalog.list_models`."""
    from worldflux.catalog import list_models as _list

    return _list(verbose=verbose, maturity=maturity, surface=surface)


def get_model_info(model: str) -> dict[str, Any]:
    """Describe one preset; see :func:`worldflux.factory.get_model_info`."""
    from worldflux.factory import get_model_info as _info

    return _info(model)


def get_config(model: str, **kwargs: Any) -> Any:
    """Compose a typed config; see :func:`worldflux.config.get_config`."""
    from worldflux.config import get_config as _get

    return _get(model, **kwargs)
