"""V-JEPA 2 and V-JEPA 2-AC: video JEPA pretraining, an action-conditioned predictor, CEM planning."""
