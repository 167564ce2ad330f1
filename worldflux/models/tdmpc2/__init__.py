"""TD-MPC2 (Hansen, Su & Wang, ICLR 2024): ``config.py`` (typed config, no torch), ``module.py``
(the :class:`~worldflux.models.tdmpc2.module.TDMPC2` LightningModule), ``networks.py``,
``losses.py`` and ``training.py``. Importing this package imports nothing heavy."""
