"""PhaseDemo: a tiny three-phase family that exists to exercise the phase machinery."""
