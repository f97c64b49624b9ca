"""Ctrl-C in a search: always stops it, and only where stopping corrupts nothing.

Python raises KeyboardInterrupt wherever the main thread happens to be. Inside a weakref callback
or a `__del__` (SQLAlchemy's connection pool runs such callbacks) the exception is printed as
"ignored" and lost, and the search ran on to its last trial; inside Optuna's or SQLAlchemy's
storage code it can leave a trial half written. Here the signal only records the request: the
KeyboardInterrupt is raised at once where the main thread is in the search's own code or in
training, and otherwise retried every `RETRY_SECONDS` until it lands in such a place. Once raised it
is retried too until the search says it arrived (`acknowledge`), so an exception
swallowed by a callback that no check recognises still stops the search a moment later.

The parent takes SIGINT (a terminal's Ctrl-C reaches every process of the search); `--workers`
children ignore it (`children_ignore_sigint`) and stop when the parent sends SIGTERM,
which they handle the same way, so each fails its running trial cleanly and prints no traceback.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

import optuna

RETRY_SECONDS = 0.1  # while the main thread is in storage or library code: retry this soon
RESEND_SECONDS = 1.0  # after raising: raise again unless the search acknowledged it by then
# Code a KeyboardInterrupt must not land in: storage writes, and code that swallows it or leaves
# locks held. This module is among them: it must not interrupt its own bookkeeping.
UNSAFE_MODULES = (
    "sqlalchemy",
    "optuna",
    "sqlite3",
    "weakref",
    "logging",
    "threading",
    "multiprocessing",
    "subprocess",
    "importlib",
    __name__,
)
SAFE_BELOW = {"__call__": "sandbox.search.objective"}  # within a trial's objective, Optuna's frames below are left


class StopRequests:
    """Whether this process was asked to stop, and whether the KeyboardInterrupt that stops it arrived."""

    def __init__(self) -> None:
        self.requested = False
        self.arrived = False

    def acknowledge(self) -> None:
        """The search caught the KeyboardInterrupt: raise no more, ignore further signals."""
        self.arrived = True
        signal.setitimer(signal.ITIMER_REAL, 0)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if signum != signal.SIGALRM:
            self.requested = True
        if not self.requested or self.arrived:
            return
        if not safe_to_interrupt(frame):
            signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS)
            return
        # Optuna logs a failed trial with its traceback; an interrupted one is reported by the search.
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        signal.setitimer(signal.ITIMER_REAL, RESEND_SECONDS)
        raise KeyboardInterrupt


def safe_to_interrupt(frame: FrameType | None) -> bool:
    """Whether a KeyboardInterrupt raised in `frame` propagates and leaves no storage half written:
    no frame from the innermost out to the trial's objective (or the bottom of the stack) belongs to
    `UNSAFE_MODULES` or is a `__del__`."""
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        name = frame.f_code.co_name
        if name == "__del__" or any(module == unsafe or module.startswith(unsafe + ".") for unsafe in UNSAFE_MODULES):
            return False
        if SAFE_BELOW.get(name) == module:
            return True
        frame = frame.f_back
    return True


_active: list[StopRequests] = []  # the process's handler, while a block of `stop_requests` runs


@contextlib.contextmanager
def stop_requests(signum: int) -> Iterator[StopRequests]:
    """Handle `signum` (SIGINT in the parent, SIGTERM in a worker child) as a request to stop; the
    previous handlers are back, and no retry is pending, once the block ends."""
    requests = StopRequests()
    verbosity = optuna.logging.get_verbosity()
    previous = {sig: signal.signal(sig, requests.handle) for sig in (signum, signal.SIGALRM)}
    _active.append(requests)
    try:
        yield requests
    finally:
        _active.remove(requests)
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        optuna.logging.set_verbosity(verbosity)


def acknowledge() -> None:
    """Called first where the search catches the KeyboardInterrupt that stops it (outside
    `stop_requests`, as in tests that call a worker directly, there is nothing to acknowledge)."""
    for requests in _active:
        requests.acknowledge()


@contextlib.contextmanager
def children_ignore_sigint() -> Iterator[None]:
    """Child processes started in this block ignore SIGINT from their first instruction (an ignored
    signal stays ignored across exec, a handler does not), so a terminal's Ctrl-C is the parent's
    alone even while a child imports. SIGINT is blocked meanwhile: one that arrives is the parent's
    once the block ends."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
