"""`at_once`: several processes doing the same thing at the same moment, as workers and machines sharing a
study or a run directory do."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any


def at_once(target: Callable[..., None], *args: Any, processes: int = 3) -> list[str]:
    """Run `target(*args, barrier, errors)` in `processes` spawned processes; `target` waits on the barrier
    before each contested step and puts what went wrong on `errors`. Returns those errors, one more for
    each process that did not exit 0."""
    context = multiprocessing.get_context("spawn")
    barrier, errors = context.Barrier(processes), context.Queue()
    started = [context.Process(target=target, args=(*args, barrier, errors)) for _ in range(processes)]
    for process in started:
        process.start()
    for process in started:
        process.join(timeout=120)
    found = [f"a process exited with {process.exitcode}" for process in started if process.exitcode != 0]
    while not errors.empty():
        found.append(errors.get())
    return found
