"""Physics: Hamiltonian, Lagrangian and controlled (Symplectic ODE-Net) world models."""
