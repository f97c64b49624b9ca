"""The study's storage: opened safely by concurrent creators, and a study resumed only when it is this search's.

A study stores, in its user attribute `search`, what makes its trials comparable: the layout
version (`LAYOUT`), the objective, the space's dimensions, the rest of the network, the recipe
(`train:`, `data:`, epochs and seed; `SearchRun.recipe`) and a hash of each plugin file's code
(`SearchRun.plugin_code`; a study stored before these were kept is not checked for them). A rerun,
or a process joining from another machine, must match all of them, or it exits 2 naming what
changed and how to start a new study (another `--out`; with a shared `--storage`, another `name:`
as well). It never mixes them into the study: a repeated candidate would be answered with a result
trained another way, and the pruner and the sampler would compare trials that are not comparable.

Nothing a search left is overwritten by a new study: a run directory holding results (trials/,
best/, best.yaml, leaderboard.csv) whose storage lacks the study (study.db empty or deleted, the
spec renamed, another --storage) is refused, and so is an in-memory SQLite URL, which can be
neither resumed nor shared by workers.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import sqlite3
import time
import warnings
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.trial import TrialState

from sandbox.errors import SandboxError, SpecError
from sandbox.search.band import band_draws
from sandbox.search.ceiling import SharedStudy, creation_lock
from sandbox.search.config import make_pruner, make_sampler
from sandbox.search.record import WORKER
from sandbox.search.run import GRACE_SECONDS, HEARTBEAT_SECONDS, LAYOUT, OPEN_ATTEMPTS, RESULTS, SearchRun
from sandbox.search.sampler import TrialSeeded
from sandbox.spec.primitives import primitives, signature

STUDY_ATTR = "search"  # the study's user attribute holding `expected_attrs`
BUDGET_ATTR = "budget_flops"  # the run's FLOP budget, for the report and the dashboard
DIMENSIONS_ATTR = "dimensions"  # the space's dimensions, readable
METRIC_NAMES = {("accuracy",): ["val_accuracy"], ("accuracy", "flops"): ["val_accuracy", "flops"]}
_LABELS = {"epochs": "epochs (--epochs, search.epochs or train.epochs)", "seed": "seed (--seed or search.seed)"}


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage with Optuna's heartbeat, tuned so many local workers share SQLite."""
    if _in_memory(url):
        raise SandboxError(
            f"the study storage {url} is an in-memory database, which no rerun can resume and no worker "
            "can share: give a file (sqlite:///PATH/study.db) or a database server's URL"
        )
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
            raise SandboxError(f"cannot open the study storage {_safe(url)}: {reason}{_hint(url, reason)}") from err


def _hint(url: str, reason: str) -> str:
    """What to do about an SQLite file that cannot be opened: a damaged one is restored from a backup;
    one in a read-only directory is intact, but SQLite writes beside it (its WAL) even to read it."""
    file = sqlite_file(url)
    if file is None:
        return ""
    if any(text in reason for text in ("not a database", "malformed")):
        return f" (restore {file} from a backup, or start a new study in another run directory)"
    if any(text in reason for text in ("readonly", "read-only", "unable to open")):
        return f" (SQLite writes beside {file.name} even to read it: copy {file.parent} somewhere writable)"
    return ""


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """A storage that fails mid-search (a full disk, a database server gone) is one line naming it,
    not a traceback. SQLite rolls back the write that failed, so what it stored is kept, and a rerun
    fails and retries the trial that was cut off."""
    try:
        yield
    except sqlalchemy.exc.SQLAlchemyError as err:
        cause = getattr(err, "orig", None) or err
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise SandboxError(
            f"the study storage {_safe(url)} failed: {reason} (what it holds is kept: once fixed, rerun to resume)"
        ) from err


def sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL; None for other storages and in-memory SQLite."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # not a URL at all: opening it says so
        return None
    if parsed.get_backend_name() != "sqlite" or _in_memory(url):
        return None
    return Path(str(parsed.database))


def _in_memory(url: str) -> bool:
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return False
    database = parsed.database or ""
    return parsed.get_backend_name() == "sqlite" and (
        ":memory:" in database or database == "" or parsed.query.get("mode") == "memory"
    )


def _open_storage_once(url: str) -> optuna.storages.RDBStorage:
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path)) as db:  # WAL lets readers and a writer work at once
            db.execute("PRAGMA journal_mode=WAL")
        engine_kwargs = {"connect_args": {"timeout": 120}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
            heartbeat_stale_trial_callback=retry_callback(),
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


def retry_callback() -> optuna.storages.RetryHeartbeatStaleTrialCallback:
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


def open_study(run: SearchRun, ceiling: int | None = None) -> SharedStudy:
    """Create the study, or load it and check that it is this search's (see the module's docstring).

    With `ceiling`, the study starts no new trial once that many count (`sandbox.search.ceiling`)."""
    file = sqlite_file(run.storage_url)
    if file is not None and (not file.exists() or file.stat().st_size == 0):  # before opening fills it in
        _refuse_overwriting(run, f"{file} is {'missing' if not file.exists() else 'empty (0 bytes)'}")
    storage = open_storage(run.storage_url)
    names = optuna.study.get_all_study_names(storage)
    if run.name not in names:
        stored = f" (it holds {', '.join(map(repr, names))})" if names else ""
        _refuse_overwriting(run, f"the storage {_safe(run.storage_url)} holds no study {run.name!r}{stored}")
    optuna.create_study(study_name=run.name, storage=storage, directions=run.config.directions, load_if_exists=True)
    config = run.config
    sampler = TrialSeeded(partial(make_sampler, config), config.seed)
    study = SharedStudy(run.name, storage, sampler, make_pruner(config), ceiling, band_draws(run))
    expected = expected_attrs(run)
    if not study.user_attrs and not study.get_trials(deepcopy=False):
        study.set_user_attr(STUDY_ATTR, expected)  # a new study; of processes creating it at once, one writes
    check_same_search(study.user_attrs, expected, run)
    label_for_tools(study, run)
    return study


def label_for_tools(study: optuna.Study, run: SearchRun) -> None:
    """What optuna-dashboard and `sandbox report` read besides the trials: the metrics' names, the FLOP
    budget (`BUDGET_ATTR`; None = none) and the dimensions as text (`DIMENSIONS_ATTR`: the dashboard cuts
    the JSON of the `search` attribute at 1,024 characters, but shows a string whole). The budget may
    change between runs, so it is this run's. Each is written only when it differs, so the workers that
    open the study after their parent write nothing."""
    wanted = {
        BUDGET_ATTR: run.config.budget,
        DIMENSIONS_ATTR: "; ".join(f"{p.path}: {p.describe()}" for p in primitives(run.space)),
    }
    stored = study.user_attrs
    for key, value in wanted.items():
        if stored.get(key) != value:
            study.set_user_attr(key, value)
    names = METRIC_NAMES[tuple(run.config.objective)]
    if study.metric_names != names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)


def _refuse_overwriting(run: SearchRun, why: str) -> None:
    """Refuse to start a new study in a run directory that holds an earlier search's results."""
    left = [name for name in RESULTS if _holds(run.run_dir / name)]
    if left:
        raise SandboxError(
            f"{run.run_dir} holds the results of a search ({', '.join(left)}) but {why}: restore the study "
            "(study.db) from a backup to resume it, or start a new study with another --out; nothing in it was changed"
        )


def _holds(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


def expected_attrs(run: SearchRun) -> dict[str, Any]:
    """What the study stores of this search, as JSON gives it back (so it compares equal when unchanged)."""
    attrs = {
        "layout": LAYOUT,
        "objective": list(run.config.objective),
        "space": signature(run.space),
        "network": run.network(),
        "recipe": run.recipe(),
        "plugins": run.plugin_code(),
    }
    return json.loads(json.dumps(attrs, default=str))


def check_same_search(stored: dict[str, Any], expected: dict[str, Any], run: SearchRun) -> None:
    """Exit 2 (SpecError or SandboxError) unless the stored study is this search: layout, objective,
    each dimension, the network, the recipe and the plugins' code, in that order, the first change named."""
    attrs = stored.get(STUDY_ATTR)
    where = f"study {run.name!r} in {_where(run)}"
    if not isinstance(attrs, dict) or attrs.get("layout") != LAYOUT:
        layout = attrs.get("layout") if isinstance(attrs, dict) else 1 if "space" in stored else None
        written = (
            "was not made by a sandbox search"
            if layout is None
            else f"was written by another version of the sandbox (layout {layout}; this one reads layout {LAYOUT}"
            + (", which stores the recipe that a resume checks)" if layout == 1 else ")")
        )
        raise SandboxError(f"{where} {written}: resume it with the sandbox that wrote it, or {_new_study(run)}")
    if attrs["objective"] != expected["objective"]:
        raise SpecError("search.objective", f"{where} optimizes {attrs['objective']}, not {expected['objective']}")
    _check_same_space(attrs["space"], expected["space"], where, run)
    for part, what in (("network", "the network"), ("recipe", "the training recipe")):
        change = first_difference(attrs[part], expected[part])
        if change is not None:
            path, old, new = change
            raise SpecError(
                _LABELS.get(path, path),
                f"{what} changed since {where} was created ({_show(old)}, now {_show(new)}), and its trials "
                f"hold the old value: resume with it, or {_new_study(run)}",
            )
    if "plugins" in attrs:
        _check_same_plugins(attrs["plugins"], expected["plugins"], where, run)


def _check_same_plugins(old: dict[str, str], new: dict[str, str], where: str, run: SearchRun) -> None:
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            change = "was added" if name not in old else "was removed" if name not in new else "changed"
            raise SpecError(
                "plugins",
                f"the plugin file {name} {change} since {where} was created, and its trials were trained with "
                f"the code it had then: restore that code to resume, or {_new_study(run)}",
            )


def _check_same_space(old: dict[str, str], new: dict[str, str], where: str, run: SearchRun) -> None:
    for path in sorted(set(old) | set(new)):
        if old.get(path) != new.get(path):
            change = "was added" if path not in old else "was removed" if path not in new else "changed"
            raise SpecError(
                path,
                f"this search dimension {change} since {where} was created; resume with the original space, "
                f"or {_new_study(run)}",
            )


_ABSENT = object()


def first_difference(old: Any, new: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The YAML path of the first place where two JSON-like values differ, with both values there
    (`_ABSENT` where a key or item is missing); None when they are equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*new, *(key for key in old if key not in new)]:
            found = first_difference(old.get(key, _ABSENT), new.get(key, _ABSENT), f"{path}.{key}" if path else key)
            if found is not None:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            item = (old[index] if index < len(old) else _ABSENT, new[index] if index < len(new) else _ABSENT)
            found = first_difference(*item, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    both_nan = isinstance(old, float) and isinstance(new, float) and math.isnan(old) and math.isnan(new)
    return None if old == new or both_nan else (path, old, new)


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "not set"
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _where(run: SearchRun) -> str:
    return str(run.run_dir) if sqlite_file(run.storage_url) == run.run_dir / "study.db" else _safe(run.storage_url)


def _new_study(run: SearchRun) -> str:
    """How to start a new study instead: another run directory, and with a shared storage another name."""
    if sqlite_file(run.storage_url) == run.run_dir / "study.db":
        return "start a new study with another --out"
    return f"start a new study with another --out and a spec whose name: is not {run.name!r}"


def fail_dead_local_trials(study: SharedStudy) -> list[int]:
    """Fail RUNNING trials whose worker process on this machine no longer exists, and retry each once.

    Optuna's heartbeat fails stale trials only once their grace period has passed; a trial whose
    local worker was killed is known dead at once, so a rerun right after a crash leaves none
    RUNNING. Those of workers on other machines are left to the heartbeat. It runs under the lock
    that creating a trial takes (`sandbox.search.ceiling.creation_lock`): two reruns at once would
    otherwise both fail one trial (the second with UpdateFinishedTrialError) and both retry it,
    overshooting --trials. A trial that Optuna's heartbeat failed meanwhile is left to its retry.
    """
    failed = []
    retry = retry_callback()
    host = socket.gethostname()
    storage = study._storage
    with creation_lock(study._rdb, study._study_id):  # the RDB storage under Optuna's cache: its URL names the lock
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker_host, _, pid = str(trial.user_attrs.get(WORKER, "")).rpartition(":")
            if worker_host == host and pid.isdigit() and not _alive(int(pid)):
                try:
                    storage.set_trial_user_attr(trial._trial_id, "error", f"worker {pid} died mid-trial")
                    storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
                except optuna.exceptions.UpdateFinishedTrialError:
                    continue  # the heartbeat of a process outside this lock failed it first
                retry(study, storage.get_trial(trial._trial_id))
                failed.append(trial.number)
    return failed


def _alive(pid: int) -> bool:
    """Whether process `pid` runs; a zombie (dead, not yet reaped, as under a container's init) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (macOS), or it ended meanwhile
        return True
