"""Workers: this process plus spawned ones, each taking trials from the shared study until it is full.

A spawned worker dies with its parent, however the parent died (even `kill -9`): it watches the
pipe its parent holds open, so none goes on training as an orphan. Its trial is left RUNNING, as
the parent's own is, and the next run fails and retries both at once.

Ctrl-C stops every worker (`sandbox.search.interrupt`): the parent takes it, fails its running
trial, and sends the children SIGTERM, on which each fails its own; each failed trial is retried
once when the search is resumed.

How many workers run: `--workers` (`search.workers`), by default one per usable core, each with one
CPU thread; never more than the trials still to train, nor than memory holds (`plan_workers`).

A CUDA error that poisons a worker's context (an illegal address, a device-side assert) costs one
trial, not the study: that trial fails and is re-enqueued once, the worker stops, and a fresh
process takes its place and goes on with the study. Catching the error and going on in the same
process would fail every remaining trial in seconds.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from multiprocessing.process import BaseProcess
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from sandbox.errors import SandboxError
from sandbox.search.ceiling import CeilingReached, DrawsExhausted, counted, retried
from sandbox.search.interrupt import acknowledge, children_ignore_sigint, stop_requests
from sandbox.search.objective import Objective
from sandbox.search.record import DEVICE_LOST, ERROR, WORKER
from sandbox.search.run import THIS_WORKER, SearchRun
from sandbox.search.storage import open_study, retry_callback, storage_errors
from sandbox.spec.load import load_plugins
from sandbox.train.device import set_cpu_threads, usable_cores

WORKER_MEMORY = 800 * 2**20  # what one CPU worker holds while training (780 MB measured)
STOP_SECONDS = 60  # how long a child may take to fail its trial after SIGTERM before it is killed


def worker_device(requested: str, worker: int) -> str:
    """A worker's device: `cuda` (no index) spreads workers over the GPUs round-robin, several per
    GPU when there are more workers; `cpu` and `cuda:N` are used as given. `requested` was resolved
    and checked before any worker started (`sandbox.train.device.resolve_device`)."""
    if requested == "cuda" and torch.cuda.device_count() > 1:
        return f"cuda:{worker % torch.cuda.device_count()}"
    return requested


def plan_workers(run: SearchRun, study: optuna.Study) -> SearchRun:
    """`run` with its worker count settled against the stored study (`cap_workers`); prints a line
    when that is fewer than were asked for."""
    trials = study.get_trials(deepcopy=False)
    waiting = sum(trial.state == TrialState.WAITING for trial in trials)  # counted, but still to train
    to_train = max(0, run.config.trials - len(counted(trials))) + waiting
    count, note = cap_workers(run.config.workers, to_train, available_memory())
    if note is not None:
        print(note, flush=True)
    return replace(run, config=replace(run.config, workers=count))


def cap_workers(asked: int | None, to_train: int, memory: int | None) -> tuple[int, str | None]:
    """How many workers run, and the line that says why when that is fewer than `asked`: `asked`, by
    default one per usable core, but no more than the trials still to train (a worker more only
    waits and holds memory) nor than `memory` bytes hold at `WORKER_MEMORY` each (None: no cap)."""
    caps = [(max(1, to_train), f"{to_train} trial{'s' * (to_train != 1)} left to train")]
    if memory is not None:
        fit = memory // WORKER_MEMORY
        each = f"about {WORKER_MEMORY / 2**30:.2f} GiB each"
        caps.append((max(1, fit), f"memory for {fit} at {each}, {memory / 2**30:.1f} GiB available"))
    count = min([asked or usable_cores(), *(cap for cap, _ in caps)])
    if asked is None or count >= asked:
        return count, None
    why = "; ".join(text for cap, text in caps if cap < asked)
    return count, f"workers: {count} instead of the {asked} asked ({why})"


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """The memory new processes may take (MemAvailable in /proc/meminfo), in bytes; None where that
    cannot be read (not Linux)."""
    try:
        for line in meminfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "MemAvailable":
                return int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


DEVICE_LOST_EXIT = 75  # a spawned worker's exit code when its CUDA context is poisoned


class StopOnLostDevice:
    """An Optuna callback: after a trial that poisoned the device, re-enqueue it and end this worker."""

    def __init__(self) -> None:
        self.lost = False

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.user_attrs.get(DEVICE_LOST):
            self.lost = True
            retry_callback()(study, trial)
            study.stop()


def run_worker(run: SearchRun, worker: int = 0) -> bool:
    """One worker: take trials from the shared study until `config.trials` count (`sandbox.search.ceiling`)
    and none is waiting. False when it stopped because its CUDA context was lost. Stopped by a
    KeyboardInterrupt, it retries its failed trial once and re-raises."""
    from sandbox.search.progress import TrialPrinter

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load_plugins(run.space, run.base, run.plugin_files)  # a spawned worker starts with only the built-ins
    device = worker_device(run.device, worker)
    if device.startswith("cuda"):
        torch.cuda.set_device(device)  # so kernels, caches and cuDNN state are this worker's GPU's, not cuda:0's
    # One thread a worker unless --threads says otherwise: OpenMP threads spinning against each
    # other (or another job) made small networks 10-30x slower.
    set_cpu_threads(run.threads)
    study = open_study(run, ceiling=run.config.trials)
    device_watch = StopOnLostDevice()
    try:  # `ask` raises these before any trial is created
        study.optimize(
            Objective(run, device),
            catch=(Exception,),
            callbacks=[TrialPrinter(run, worker if (run.config.workers or 1) > 1 else None), device_watch],
        )
    except DrawsExhausted as err:
        print(f"search: {err}", file=sys.stderr, flush=True)
    except CeilingReached:
        pass
    except KeyboardInterrupt:
        acknowledge()
        retry_interrupted(study)
        raise
    return not device_watch.lost


def retry_interrupted(study: optuna.Study) -> None:
    """Enqueue once, as a crash's trials are, the trials this process failed because it was stopped,
    so that a resumed search trains them instead of counting them as failures."""
    trials = study.get_trials(deepcopy=False)
    again = retried(trials)
    for trial in trials:
        if (
            trial.state == TrialState.FAIL
            and trial.user_attrs.get(WORKER) == THIS_WORKER
            and ERROR not in trial.user_attrs  # a failure the objective recorded is not an interruption
            and trial.number not in again
        ):
            retry_callback()(study, trial)


def _worker_process(run: SearchRun, worker: int) -> None:
    exit_with_parent(f"worker {worker}")
    with stop_requests(signal.SIGTERM), contextlib.suppress(KeyboardInterrupt):  # the parent reports it
        try:
            with storage_errors(run.storage_url):
                lost = not run_worker(run, worker)
        except SandboxError as err:  # one line, as the parent prints its own
            print(f"worker {worker}: error: {err}", file=sys.stderr, flush=True)
            sys.exit(1)
        if lost:
            sys.exit(DEVICE_LOST_EXIT)


def exit_with_parent(name: str) -> None:
    """End this spawned process as soon as its parent is gone: `parent_process().join()` returns when
    the parent's end of the spawn pipe closes, which the kernel does however the parent died."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        print(f"{name}: the search's main process is gone; stopping", file=sys.stderr, flush=True)
        os._exit(1)  # at once, mid-trial: there is no one left to report to

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def run_workers(run: SearchRun) -> None:
    """Run `config.workers` workers on this machine: this process plus spawned ones, each replaced by
    a fresh process when its CUDA context is lost (this process's own too). Stopped by a
    KeyboardInterrupt, it stops the children before re-raising it."""
    context = multiprocessing.get_context("spawn")
    processes: dict[int, BaseProcess] = {}
    try:
        for worker in range(1, run.config.workers or 1):
            processes[worker] = _start(context, run, worker)
        failure: Exception | None = None
        try:
            if not run_worker(run, 0):
                _replace(processes, context, run, 0)
        except Exception as err:  # the children go on with the study; the error is raised once they end
            failure = err
        _wait(processes, context, run)
        if failure is not None:
            raise failure
    except KeyboardInterrupt:
        acknowledge()
        _stop(processes)
        raise


def _wait(processes: dict[int, BaseProcess], context: multiprocessing.context.SpawnContext, run: SearchRun) -> None:
    """Until every child has ended, replacing one whose CUDA context was lost. It sleeps here rather
    than in `join`, so that a Ctrl-C lands in this module's code (`sandbox.search.interrupt`)."""
    while processes:
        time.sleep(0.2)
        for worker, process in list(processes.items()):
            if process.exitcode is not None:
                del processes[worker]
                if process.exitcode == DEVICE_LOST_EXIT:
                    _replace(processes, context, run, worker)


def _stop(processes: dict[int, BaseProcess]) -> None:
    """SIGTERM each child, on which it fails its running trial and exits; one that has not within
    `STOP_SECONDS` is killed (a rerun, or the search at its end, fails its trial: `fail_dead_local_trials`)."""
    for process in processes.values():
        if process.exitcode is None:
            process.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for process in processes.values():
        process.join(max(0.0, deadline - time.monotonic()))
        if process.exitcode is None:
            process.kill()
            process.join()
    processes.clear()


def _start(context: multiprocessing.context.SpawnContext, run: SearchRun, worker: int) -> BaseProcess:
    process = context.Process(target=_worker_process, args=(run, worker), daemon=False)
    with children_ignore_sigint():  # a terminal's Ctrl-C is the parent's alone
        process.start()
    return process


def _replace(
    processes: dict[int, BaseProcess],
    context: multiprocessing.context.SpawnContext,
    run: SearchRun,
    worker: int,
) -> None:
    print(f"worker {worker}: its CUDA context is lost; a fresh process takes its place", file=sys.stderr, flush=True)
    processes[worker] = _start(context, run, worker)
