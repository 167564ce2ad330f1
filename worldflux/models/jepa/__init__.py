"""JEPA: joint-embedding predictive world models that plan toward goals (PLDM)."""
