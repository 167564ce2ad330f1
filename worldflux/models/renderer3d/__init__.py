"""renderer3d: 3-D scene world models rendered from any camera pose (neural scene field, GQN)."""
