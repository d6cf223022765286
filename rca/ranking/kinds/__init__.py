"""Hypothesis kinds, one module each; every public module here registers its kind on import."""
