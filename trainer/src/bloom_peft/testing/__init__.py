"""Test support shared by the Python suite and the TypeScript engine's fixtures (no pytest import here)."""
