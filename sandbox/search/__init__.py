"""The architecture search: config, storage, the objective, workers, results, the reference, the
report, and the flow that runs them. The package is also the call `sandbox.search(...)` (`sandbox.verbs`)."""

from sandbox.verbs import make_callable

make_callable(__name__, "search")
