"""Workers: this process plus spawned ones, each taking trials from the shared study until it is full.

A spawned worker dies with its parent, however the parent died (even `kill -9`): it watches the
pipe its parent holds open, so none goes on training as an orphan. Its trial is left RUNNING, as
the parent's own is, and the next run fails and retries both at once.

A CUDA error that poisons a worker's context (an illegal address, a device-side assert) costs one
trial, not the study: that trial fails and is re-enqueued once, the worker stops, and a fresh
process takes its place and goes on with the study. Catching the error and going on in the same
process would fail every remaining trial in seconds.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
from multiprocessing.process import BaseProcess

import optuna
import torch

from sandbox.search.ceiling import CeilingReached, DrawsExhausted
from sandbox.search.objective import Objective
from sandbox.search.run import SearchRun
from sandbox.search.storage import open_study, retry_callback
from sandbox.spec.load import load_plugins
from sandbox.train.device import set_cpu_threads


def worker_device(requested: str, worker: int) -> str:
    """A worker's device: `cuda` (no index) spreads workers over the GPUs round-robin, several per
    GPU when there are more workers; `cpu` and `cuda:N` are used as given. `requested` was resolved
    and checked before any worker started (`sandbox.train.device.resolve_device`)."""
    if requested == "cuda" and torch.cuda.device_count() > 1:
        return f"cuda:{worker % torch.cuda.device_count()}"
    return requested


DEVICE_LOST_EXIT = 75  # a spawned worker's exit code when its CUDA context is poisoned


class StopOnLostDevice:
    """An Optuna callback: after a trial that poisoned the device, re-enqueue it and end this worker."""

    def __init__(self) -> None:
        self.lost = False

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.user_attrs.get("device_lost"):
            self.lost = True
            retry_callback()(study, trial)
            study.stop()


def run_worker(run: SearchRun, worker: int = 0) -> bool:
    """One worker: take trials from the shared study until `config.trials` count (`sandbox.search.ceiling`)
    and none is waiting. False when it stopped because its CUDA context was lost."""
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
            callbacks=[TrialPrinter(run, worker if run.config.workers > 1 else None), device_watch],
        )
    except DrawsExhausted as err:
        print(f"search: {err}", file=sys.stderr, flush=True)
    except CeilingReached:
        pass
    return not device_watch.lost


def _worker_process(run: SearchRun, worker: int) -> None:
    exit_with_parent(f"worker {worker}")
    with contextlib.suppress(KeyboardInterrupt):  # the parent reports the interruption
        if not run_worker(run, worker):
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
    a fresh process when its CUDA context is lost (this process's own too)."""
    context = multiprocessing.get_context("spawn")
    processes = {worker: _start(context, run, worker) for worker in range(1, run.config.workers)}
    try:
        if not run_worker(run, 0):
            _replace(processes, context, run, 0)
    finally:
        while processes:
            for worker, process in list(processes.items()):
                process.join(timeout=1)
                if process.exitcode is not None:
                    del processes[worker]
                    if process.exitcode == DEVICE_LOST_EXIT:
                        _replace(processes, context, run, worker)


def _start(context: multiprocessing.context.SpawnContext, run: SearchRun, worker: int) -> BaseProcess:
    process = context.Process(target=_worker_process, args=(run, worker), daemon=False)
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
