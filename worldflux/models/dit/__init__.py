"""DiT: the Conditional Diffusion Transformer world model of Navigation World Models (NWM)."""
