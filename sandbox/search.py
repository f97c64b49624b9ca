"""The architecture search: one Optuna study, any number of workers, resumable.

Everything durable lives in the study's storage (SQLite in the run directory by default, any
Optuna storage URL otherwise): trials, their concrete specs and FLOPs, and the space's fingerprint,
so a rerun resumes, workers on other machines join, and a changed space is refused.

Over-budget candidates: their FLOPs are counted before training, they are never trained, and
they end COMPLETE with a pessimistic stand-in value (accuracy 0) plus a violated constraint
(`trial.set_constraint`). COMPLETE because GP and NSGA-II learn only from complete trials; the
constraint makes every sampler treat them as infeasible and `study.best_trial(s)` skip them; the
`over_budget` attribute keeps the stand-in out of every leaderboard, plot and summary.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import socket
import sqlite3
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
import torch
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial, Trial, TrialState

from sandbox.errors import SandboxError, SpecError
from sandbox.flops import count
from sandbox.registry import REGISTRY
from sandbox.search_config import SearchConfig
from sandbox.search_results import is_result
from sandbox.space import Primitive, sample, signature
from sandbox.spec import load_plugins, validate

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 60
OPEN_ATTEMPTS = 5  # tries to open a storage that other processes are creating at the same moment
WORKER = f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class SearchRun:
    """Everything a worker needs; picklable, so worker processes get it whole."""

    space: dict[str, Any]
    base: Path
    name: str
    config: SearchConfig
    run_dir: Path
    storage_url: str
    device: str = "auto"
    data_dir: Path | None = None
    plugin_files: tuple[Path, ...] = ()  # from --plugin, absolute
    reference: Path | None = None  # search.reference, resolved and checked before any training

    def trial_dir(self, number: int) -> Path:
        return self.run_dir / "trials" / f"{number:04d}"


# ---------------------------------------------------------------------------- storage and study


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
    expected = {"space": signature(run.space), "objective": list(run.config.objective)}
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


# ---------------------------------------------------------------------------- one trial


def suggest_with(trial: Trial) -> Callable[[Primitive], Any]:
    """A `space.Suggest` that asks the Optuna trial, keyed by the primitive's YAML path."""

    def suggest(primitive: Primitive) -> Any:
        dist = primitive.distribution
        if isinstance(dist, CategoricalDistribution):
            return trial.suggest_categorical(primitive.path, dist.choices)
        if isinstance(dist, FloatDistribution):
            return trial.suggest_float(primitive.path, dist.low, dist.high, log=dist.log, step=dist.step)
        return trial.suggest_int(primitive.path, dist.low, dist.high, log=dist.log, step=dist.step)

    return suggest


def concrete_spec(run: SearchRun, trial: Trial) -> dict[str, Any]:
    """The trial's concrete spec: sampled values, absolute plugin paths, no `search:` section."""
    raw = sample(run.space, suggest_with(trial))
    raw.pop("search", None)
    raw["name"] = f"{run.name}-trial{trial.number}"
    plugins = [str((run.base / p).resolve()) for p in raw.get("plugins") or []]
    plugins += [str(p) for p in run.plugin_files if str(p) not in plugins]
    if plugins:
        raw["plugins"] = plugins
    return raw


class Objective:
    """Sample, count, skip if over budget, train with pruning; record everything on the trial."""

    def __init__(self, run: SearchRun, device: str, train: Callable[..., Mapping[str, Any]] | None = None) -> None:
        """`train` (default `sandbox.train.train_run`) is replaceable so benchmarks of the samplers
        can score candidates without training them."""
        self.run = run
        self.device = device
        self.train = train

    def __call__(self, trial: Trial) -> float | tuple[float, float]:
        run, config = self.run, self.run.config
        trial.set_user_attr("worker", WORKER)
        raw = concrete_spec(run, trial)
        trial.set_user_attr("spec", yaml.safe_dump(raw, sort_keys=False))
        try:
            spec = validate(raw, base=run.base)
            counts = count(spec)
        except SpecError as err:  # e.g. every branch of a module chosen `none`
            trial.set_user_attr("invalid", str(err))
            trial.set_constraint("flops_over_budget", 1e12)  # finite: GP models constraint values
            return self._stand_in(0)
        trial.set_user_attr("flops", counts.flops)
        trial.set_user_attr("params", counts.params)
        over = counts.flops - config.budget if config.budget else -1
        trial.set_constraint("flops_over_budget", float(over))
        if over > 0:
            trial.set_user_attr("over_budget", True)
            return self._stand_in(counts.flops)
        earlier = self._same_candidate(trial)
        if earlier is not None:  # samplers do propose a trained candidate again: reuse its result
            trial.set_user_attr("duplicate_of", earlier.number)
            for key in ("test_accuracy", "seconds", "train_images_per_second", "run_dir"):
                trial.set_user_attr(key, earlier.user_attrs.get(key))
            return tuple(earlier.values) if config.multi_objective else earlier.values[0]
        return self._train(trial, spec, counts.flops)

    @staticmethod
    def _same_candidate(trial: Trial) -> FrozenTrial | None:
        """A finished, trained trial with exactly these parameters, if there is one."""
        for earlier in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if earlier.params == trial.params and is_result(earlier):
                return earlier
        return None

    def _stand_in(self, flops: int) -> float | tuple[float, float]:
        """The pessimistic value of an infeasible candidate (never shown as a result)."""
        return (0.0, float(flops)) if self.run.config.multi_objective else 0.0

    def _train(self, trial: Trial, spec: Any, flops: int) -> float | tuple[float, float]:
        from sandbox.train import train_run

        train = self.train or train_run
        run, config = self.run, self.run.config
        out_dir = run.trial_dir(trial.number)

        def on_epoch(epoch: int, record: Mapping[str, Any]) -> None:
            trial.set_user_attr("epochs_trained", epoch + 1)
            if config.multi_objective:
                return  # Optuna prunes single-objective studies only
            trial.report(record["val_accuracy"], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"val accuracy {record['val_accuracy']:.4f} at epoch {epoch + 1}")

        try:
            metrics = train(
                spec,
                out_dir=out_dir,
                epochs=config.epochs,
                device=self.device,
                seed=config.seed,
                data_dir=run.data_dir,
                on_epoch=on_epoch,
                progress=False,
            )
        except optuna.TrialPruned:
            shutil.rmtree(out_dir, ignore_errors=True)
            raise
        except Exception as err:
            trial.set_user_attr("error", f"{type(err).__name__}: {err}".splitlines()[0])
            shutil.rmtree(out_dir, ignore_errors=True)
            raise
        for key in ("seed", "test_accuracy", "seconds", "train_images_per_second"):
            trial.set_user_attr(key, metrics[key])
        trial.set_user_attr("run_dir", str(out_dir))
        accuracy = float(metrics["val_accuracy"])
        return (accuracy, float(flops)) if config.multi_objective else accuracy


# ---------------------------------------------------------------------------- workers


def worker_device(requested: str, worker: int) -> str:
    """Spread workers over the GPUs round-robin; several per GPU when there are more workers."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and torch.cuda.device_count() > 1:
        return f"cuda:{worker % torch.cuda.device_count()}"
    return requested


def run_worker(run: SearchRun, worker: int = 0) -> None:
    """One worker: take trials from the shared study until it holds `config.trials` finished ones."""
    from sandbox.search_progress import TrialPrinter

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for file in run.plugin_files:  # a spawned worker starts with only the built-in plugins
        REGISTRY.load_file(file)
    load_plugins(run.space, run.base)
    device = worker_device(run.device, worker)
    if device == "cpu" and run.config.workers > 1:
        # Workers share the cores: OpenMP threads spinning against each other made small
        # networks 10-30x slower, so each worker gets its share of the cores.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // run.config.workers))
    study = open_study(run, worker)
    if finished_count(study) >= run.config.trials:
        return
    study.optimize(
        Objective(run, device),
        catch=(Exception,),
        callbacks=[
            optuna.study.MaxTrialsCallback(run.config.trials, states=FINISHED),
            TrialPrinter(run, worker if run.config.workers > 1 else None),
        ],
        gc_after_trial=True,
    )


def _worker_process(run: SearchRun, worker: int) -> None:
    with contextlib.suppress(KeyboardInterrupt):  # the parent reports the interruption
        run_worker(run, worker)


def run_workers(run: SearchRun) -> None:
    """Run `config.workers` workers on this machine: this process plus spawned ones."""
    context = multiprocessing.get_context("spawn")
    others = [
        context.Process(target=_worker_process, args=(run, worker), daemon=False)
        for worker in range(1, run.config.workers)
    ]
    for process in others:
        process.start()
    try:
        run_worker(run, 0)
    finally:
        for process in others:
            process.join()
