"""Example user plugins. They are not loaded by default: a spec names them in `plugins:`."""
