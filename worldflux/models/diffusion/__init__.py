"""Diffusion: DIAMOND (Alonso et al., NeurIPS 2024), the EDM diffusion world model of pixels."""
