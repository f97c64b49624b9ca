"""Ctrl-C in a search lands where it stops the search: never swallowed by a callback, never inside storage code."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
import types
import weakref
from collections.abc import Callable

import optuna
import pytest

from sandbox.search.interrupt import acknowledge, safe_to_interrupt, stop_requests


def in_module(name: str, source: str) -> types.ModuleType:
    """A module named `name` (as SQLAlchemy's are) holding the functions `source` defines."""
    module = types.ModuleType(name)
    exec(source, module.__dict__)
    return module


def frame_of(module: types.ModuleType) -> types.FrameType:
    return module.current_frame()


def test_frames_in_storage_code_or_a_finalizer_are_unsafe_and_the_searchs_own_are_safe() -> None:
    storage = in_module("sqlalchemy.pool.fake", "import sys\ndef current_frame():\n    return sys._getframe()\n")
    finalizer = in_module("somelib", "import sys\ndef __del__():\n    return sys._getframe()\n")
    finalizer.current_frame = finalizer.__del__
    assert not safe_to_interrupt(frame_of(storage))
    assert not safe_to_interrupt(frame_of(finalizer))
    assert safe_to_interrupt(sys._getframe())  # a test's (or the training loop's) frame


def test_storage_code_below_the_trials_objective_does_not_make_training_unsafe() -> None:
    optuna_like = in_module("optuna.study._fake", "def run_trial(func):\n    return func()\n")
    objective = in_module(
        "sandbox.search.objective",
        "import sys\nclass Objective:\n    def __call__(self):\n        return sys._getframe()\n",
    )
    assert safe_to_interrupt(optuna_like.run_trial(objective.Objective()))
    assert not safe_to_interrupt(optuna_like.run_trial(sys._getframe))  # outside an objective: storage code


def interrupted_within(seconds: float, work: Callable[[], None]) -> bool:
    """Whether a KeyboardInterrupt reaches this frame while `work` runs in a loop for `seconds`."""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            work()
    except KeyboardInterrupt:
        acknowledge()
        return True
    return False


def test_ctrl_c_inside_a_weakref_callback_is_not_swallowed() -> None:
    # SQLAlchemy's pool finalizes connections in weakref callbacks; a KeyboardInterrupt raised there
    # is printed as "ignored" and lost, and the search ran all its trials (1 Ctrl-C in 10)
    pool = in_module(
        "sqlalchemy.pool.fake",
        "import signal\ndef finalize(ref):\n    signal.raise_signal(signal.SIGINT)\n",
    )

    class Connection:
        pass

    refs: list[weakref.ref] = []

    def drop_a_connection_once() -> None:
        if not refs:
            refs.append(weakref.ref(Connection(), pool.finalize))  # dropped at once: the callback runs

    with stop_requests(signal.SIGINT) as requests:
        assert interrupted_within(5, drop_a_connection_once), "the Ctrl-C was swallowed"
        assert refs and refs[0]() is None and requests.arrived


def test_an_interrupt_swallowed_where_no_check_sees_it_is_raised_again() -> None:
    with stop_requests(signal.SIGINT) as requests:
        with contextlib.suppress(KeyboardInterrupt):  # lost, as in a callback of a library that no check knows
            signal.raise_signal(signal.SIGINT)  # a safe frame: raised at once
        assert not requests.arrived
        assert interrupted_within(5, lambda: time.sleep(0.01)), "the Ctrl-C was lost"


def test_once_the_search_has_it_further_ctrl_c_let_it_finish_stopping() -> None:
    with stop_requests(signal.SIGINT):
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        acknowledge()
        signal.raise_signal(signal.SIGINT)
        assert not interrupted_within(1.5, lambda: time.sleep(0.01))


def test_the_previous_handlers_and_logging_are_back_after_the_search() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGALRM), optuna.logging.get_verbosity()
    with stop_requests(signal.SIGINT), pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)  # and Optuna's log of the failed trial silenced
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGALRM), optuna.logging.get_verbosity()) == before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
