"""token: IRIS, the discrete-token world model (VQ autoencoder + GPT + actor-critic)."""
