"""The study's storage: opened safely by concurrent creators, checked for an unchanged space on resume."""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.trial import TrialState

from sandbox.errors import SandboxError, SpecError
from sandbox.search.run import FINISHED, GRACE_SECONDS, HEARTBEAT_SECONDS, OPEN_ATTEMPTS, SearchRun
from sandbox.space.primitives import signature


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage with Optuna's heartbeat, tuned so many local workers share SQLite."""
    attempt = 1
    while True:
        try:
            return _open_storage_once(url)
        except Exception as err:
            if attempt < OPEN_ATTEMPTS and _lost_creation_race(err):
                time.sleep(0.5 * attempt)
                attempt += 1
                continue
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise SandboxError(f"cannot open the study storage {_safe(url)}: {reason}") from err


def _open_storage_once(url: str) -> optuna.storages.RDBStorage:
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as db:  # WAL lets readers and a writer work at once
            db.execute("PRAGMA journal_mode=WAL")
        engine_kwargs = {"connect_args": {"timeout": 120}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
            heartbeat_stale_trial_callback=_retry_callback(),
        )


def _lost_creation_race(err: Exception) -> bool:
    """Whether another process was creating the same new database at the same moment.

    Opening a storage creates Optuna's tables, inserts the one `version_info` row, stamps
    `alembic_version` and, for SQLite, switches the file to WAL. Processes opening a new database at
    once (workers, a second machine, a reader polling a starting search) collide on a table, on
    those rows' unique keys, or on SQLite's lock for the journal switch (which does not wait).
    """
    text = str(err)
    return isinstance(err, sqlalchemy.exc.IntegrityError) or "already exists" in text or "database is locked" in text


def _retry_callback() -> optuna.storages.RetryHeartbeatStaleTrialCallback:
    """Re-enqueue a trial cut off by a dead worker once, with the same parameters."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)


def _safe(url: str) -> str:
    """The URL with any password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def open_study(run: SearchRun, worker: int = 0) -> optuna.Study:
    """Create the study, or load it and check that its space and objective are unchanged."""
    storage = open_storage(run.storage_url)
    try:
        study = optuna.create_study(
            study_name=run.name,
            storage=storage,
            sampler=run.config.make_sampler(worker),
            pruner=run.config.make_pruner(),
            directions=run.config.directions,
            load_if_exists=True,
        )
    except ValueError as err:  # the stored study has other directions
        raise SpecError("search.objective", f"the stored study {run.name!r} has another objective: {err}") from err
    expected: dict[str, Any] = {"space": signature(run.space), "objective": list(run.config.objective)}
    stored = study.user_attrs
    if "space" not in stored:
        for key, value in expected.items():
            study.set_user_attr(key, value)
        return study
    if stored.get("objective") != expected["objective"]:
        raise SpecError(
            "search.objective", f"the stored study optimizes {stored.get('objective')}, not {expected['objective']}"
        )
    _check_same_space(stored["space"], expected["space"], run)
    return study


def _check_same_space(old: Mapping[str, str], new: Mapping[str, str], run: SearchRun) -> None:
    for path in sorted(set(old) | set(new)):
        if old.get(path) != new.get(path):
            change = "was added" if path not in old else "was removed" if path not in new else "changed"
            raise SpecError(
                path,
                f"this search dimension {change} since study {run.name!r} in {run.run_dir} was created; "
                "resume with the original space, or start a new study with another --out",
            )


def fail_dead_local_trials(study: optuna.Study) -> list[int]:
    """Fail RUNNING trials whose worker process on this machine no longer exists.

    Optuna's heartbeat fails stale trials only once their grace period has passed; a trial whose
    local worker was killed is known dead at once, so a rerun right after a crash leaves none
    RUNNING. Those of workers on other machines are left to the heartbeat.
    """
    failed = []
    retry = _retry_callback()
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker_host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
        if worker_host == host and pid.isdigit() and not _alive(int(pid)):
            study._storage.set_trial_user_attr(trial._trial_id, "error", f"worker {pid} died mid-trial")
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            retry(study, study._storage.get_trial(trial._trial_id))
            failed.append(trial.number)
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))
