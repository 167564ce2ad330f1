"""Optimisers used by worldflux families that the standard ``torch.optim`` does not provide."""

from worldflux.optim.laprop import LaProp

__all__ = ["LaProp"]
