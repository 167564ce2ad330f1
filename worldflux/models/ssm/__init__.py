"""R2I, Recall to Imagine (Samsami et al., ICLR 2024), as chandar-lab/Recall2Imagine @ 6e317e7.

``config.py`` holds the typed config (no torch); ``module.py`` the Lightning module ``SSM``.
Importing this package imports neither.
"""
