"""Search spaces: a spec whose values may be search primitives, sampled into concrete specs, and its FLOP bounds."""
