"""`--trials` as a ceiling that every process on a study respects, and retries that are picked up.

`--trials N` trains N networks: a draw outside the FLOP band, an invalid one and a repeat of a
trained candidate cost no training and take no place (`FREE_DRAWS`). So that a band holding few or
no candidates cannot make a search draw for ever, a study holds at most `DRAWS_PER_TRIAL` draws per
place; past that it ends with `DrawsExhausted`, one line saying why. (Random sampling makes no trial
of a draw outside the band at all: `sandbox.search.band`, whose own cap ends it alike.)

Optuna's MaxTrialsCallback counts finished trials only, so N processes sharing a study each start
one more trial when the target is near and end at `[8/6]`. Here a trial counts from the moment it
is created: finished, running, or waiting (a retry that Optuna's heartbeat or a rerun after a crash
enqueued); a failed trial that was retried counts once, as its retry. A process asks for a new
trial only while fewer than `--trials` count, and it counts and creates under a lock that every
process on the storage takes (a lock file beside an SQLite database, an advisory lock on
PostgreSQL), so two processes at the last place cannot both take it. A waiting trial is always
run, at the ceiling too: it took its place when it was first created. Other storages get no lock,
so there two processes asking at the same instant may end one trial over.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, Trial, TrialState

from sandbox.errors import SandboxError
from sandbox.search.record import FREE_DRAWS
from sandbox.search.run import FINISHED

_ADVISORY_LOCK = 0x5A4E  # PostgreSQL advisory locks are keyed by two integers: this one and the study's id


DRAWS_PER_TRIAL = 50


class CeilingReached(Exception):
    """No new trial may start: `--trials` of them count already and none is waiting."""


class DrawsExhausted(CeilingReached):
    """The study drew `DRAWS_PER_TRIAL` times its places and still has places to fill."""


def is_free_draw(trial: FrozenTrial) -> bool:
    """A trial that trained nothing: outside the band, invalid, or a repeat answered from an earlier one."""
    return not trial.user_attrs.keys().isdisjoint(FREE_DRAWS)


def retried(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of the failed trials that a later trial retries (each retry lists all before it)."""
    return {number for trial in trials for number in trial.system_attrs.get("retry_history", ())}


def counted(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that take a place under `--trials`: all but free draws and failed ones that were retried."""
    superseded = retried(trials)
    return [trial for trial in trials if trial.number not in superseded and not is_free_draw(trial)]


def finished(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The counted trials that have ended."""
    return [trial for trial in counted(trials) if trial.state in FINISHED]


class SharedStudy(optuna.Study):
    """A study whose `ask` refuses a new trial once `ceiling` trials count (no ceiling: Optuna's `ask`)."""

    def __init__(
        self,
        study_name: str,
        storage: optuna.storages.BaseStorage,
        sampler: optuna.samplers.BaseSampler,
        pruner: optuna.pruners.BasePruner,
        ceiling: int | None = None,
        draw: Callable[[int], tuple[dict[str, Any], dict[str, Any]]] | None = None,
    ) -> None:
        """`draw(number)`: the params and user attrs of trial `number`, enqueued before it is created
        (`sandbox.search.band`); None: the sampler proposes them."""
        super().__init__(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
        self.ceiling = ceiling
        self.draw = draw
        self._rdb = storage

    def ask(self, fixed_distributions: dict | None = None) -> Trial:
        if self.ceiling is None and self.draw is None:
            return super().ask(fixed_distributions)
        with creation_lock(self._rdb, self._study_id):
            trials = self.get_trials(deepcopy=False)
            if any(trial.state == TrialState.WAITING for trial in trials):
                return super().ask(fixed_distributions)  # takes the waiting trial
            if self.ceiling is not None:
                self._check_places(trials, self.ceiling)
            if self.draw is not None:
                params, attrs = self.draw(len(trials))  # the trial's number: no other process creates one now
                self.enqueue_trial(params, user_attrs=attrs)
            return super().ask(fixed_distributions)

    @staticmethod
    def _check_places(trials: Sequence[FrozenTrial], ceiling: int) -> None:
        places = len(counted(trials))
        if places >= ceiling:
            raise CeilingReached(f"{ceiling} trials are stored, running or waiting")
        if len(trials) >= DRAWS_PER_TRIAL * ceiling:
            raise DrawsExhausted(
                f"stopped after {len(trials):,} draws with {places} of {ceiling} candidates trained: "
                "almost every draw falls outside the FLOP band, is invalid or repeats a trained candidate "
                "(widen search.budget or lower its floor)"
            )


@contextlib.contextmanager
def creation_lock(storage: optuna.storages.BaseStorage, study_id: int) -> Iterator[None]:
    """Held while a process counts the study's trials and creates one: shared by every process on
    the storage, so the count it checks is still true when its trial is created. An in-memory storage
    (a benchmark's) belongs to one process and needs none."""
    if not isinstance(storage, RDBStorage):
        yield
        return
    url = storage.engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        with _file_lock(Path(f"{url.database}.lock")):
            yield
    elif url.get_backend_name() == "postgresql":
        with _advisory_lock(storage, study_id):
            yield
    else:
        yield


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, as for other storages
        yield
        return
    try:
        handle = path.open("a")
    except OSError as err:  # a directory or an unwritable file in its place
        raise SandboxError(
            f"cannot open the lock file {path}: {err.strerror or err} (the search creates it beside the study; "
            "remove what is there)"
        ) from err
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed, or its process dies
        yield


@contextlib.contextmanager
def _advisory_lock(storage: RDBStorage, study_id: int) -> Iterator[None]:
    from sqlalchemy import text

    with storage.engine.connect() as connection:  # a session lock: a process that dies releases it
        connection.execute(text("SELECT pg_advisory_lock(:key, :study)"), {"key": _ADVISORY_LOCK, "study": study_id})
        try:
            yield
        finally:
            connection.execute(
                text("SELECT pg_advisory_unlock(:key, :study)"), {"key": _ADVISORY_LOCK, "study": study_id}
            )
