"""FLOP bounds of a search space (its primitives are spec syntax: `sandbox.spec.primitives`)."""
