"""The training loop behind ``python -m worldflux.train``.

- :mod:`~worldflux.training.collector`: step environments with the model's agent into a replay.
- :mod:`~worldflux.training.data`: online and offline Lightning data modules (train ratio).
- :mod:`~worldflux.training.callbacks`: metrics, NaN stop, checkpoints, open-loop videos.
- :mod:`~worldflux.training.checkpoint`: atomic checkpoint files and resuming.
- :mod:`~worldflux.training.setup`: build the run's pieces from the composed config.
"""
