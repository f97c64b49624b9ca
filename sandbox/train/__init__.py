"""Training: config, data, the loop. The package is also the call `sandbox.train(...)` (`sandbox.verbs`)."""

from sandbox.verbs import make_callable

make_callable(__name__, "train")
