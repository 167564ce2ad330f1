"""Training data: the episode-aware :class:`~worldflux.data.replay.Replay` and offline datasets
(:mod:`worldflux.data.episodes`)."""
