"""Training data: the episode-aware :class:`~worldflux.data.replay.Replay` and offline datasets
(:mod:`worldflux.data.episodes` reads them, :mod:`worldflux.data.writer` appends to them,
:mod:`worldflux.data.storage` makes every write survive a kill)."""
