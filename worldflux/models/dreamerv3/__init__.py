"""DreamerV3 (Hafner et al., Nature 2025), as danijar/dreamerv3 at commit e3f0224.

``config.py`` holds the typed config (no torch); ``module.py`` the Lightning module ``DreamerV3``.
Importing this package imports neither.
"""
