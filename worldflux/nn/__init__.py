"""Layers and functions shared by several families."""
