"""A CUDA error that poisons a worker's context costs one trial, not the study (on the CPU, the error faked)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from optuna.trial import TrialState

import sandbox.search.workers as workers
from sandbox.search.objective import Objective
from sandbox.search.storage import open_study
from sandbox.search.workers import StopOnLostDevice
from sandbox.train.device import is_device_lost
from tests.search.test_objective import PARAMS, make_run, stand_in

ILLEGAL = "CUDA error: an illegal memory access was encountered"


@pytest.mark.parametrize(
    ("err", "lost"),
    [
        (torch.AcceleratorError(ILLEGAL), True),
        (RuntimeError("CUDA error: device-side assert triggered"), True),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), False),
        (torch.OutOfMemoryError("CUDA out of memory"), False),  # the memory is given back: the worker goes on
    ],
)
def test_which_errors_lose_the_device(err: BaseException, lost: bool) -> None:
    assert is_device_lost(err) is lost


def test_the_poisoned_trial_fails_is_retried_and_the_worker_stops(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    study, calls = open_study(run), []
    trained = stand_in(calls)
    faults = [torch.AcceleratorError(ILLEGAL)]  # the first training poisons the context

    def train(spec: Any, **kwargs: Any) -> dict[str, float]:
        if faults:
            raise faults.pop()
        return trained(spec, **kwargs)

    study.enqueue_trial(PARAMS)
    watch = StopOnLostDevice()
    study.optimize(Objective(run, "cpu", train=train), n_trials=5, catch=(Exception,), callbacks=[watch])
    failed, retry = study.get_trials(deepcopy=False)  # stopped after the first: no trial ran in the dead context
    assert watch.lost and failed.state == TrialState.FAIL and failed.user_attrs["device_lost"]
    assert retry.state == TrialState.WAITING and retry.params == failed.params
    # A fresh process (here: a fresh objective) takes the retry first and goes on with the study.
    study.optimize(Objective(run, "cpu", train=train), n_trials=1, catch=(Exception,))
    assert study.trials[1].state == TrialState.COMPLETE and study.trials[1].params == PARAMS and calls == [1]


def test_a_worker_that_lost_its_device_is_replaced_by_a_fresh_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[int] = []

    class Finished:
        def __init__(self, exitcode: int) -> None:
            self.exitcode = exitcode

        def join(self, timeout: float | None = None) -> None:
            pass

    def start(context: Any, run: Any, worker: int) -> Finished:
        started.append(worker)
        # worker 1 loses its device the first time; every fresh process then finishes
        return Finished(workers.DEVICE_LOST_EXIT if started.count(worker) == 1 and worker == 1 else 0)

    monkeypatch.setattr(workers, "_start", start)
    monkeypatch.setattr(workers, "run_worker", lambda run, worker: False)  # this process lost its own
    workers.run_workers(make_run(tmp_path, workers=2))
    assert sorted(started) == [0, 1, 1]  # worker 1 spawned, then replaced; worker 0 replaced by a process


class Opened(Exception):
    """Raised where a worker would open the study: everything before it is the worker's set-up."""


def test_each_worker_sets_its_own_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen: list[str] = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)

    def open_study(*args: Any, **kwargs: Any) -> None:
        raise Opened

    monkeypatch.setattr(workers, "open_study", open_study)
    run = replace(make_run(tmp_path, workers=4), device="cuda")
    threads = torch.get_num_threads()
    try:
        for worker in range(4):
            with pytest.raises(Opened):
                workers.run_worker(run, worker)
    finally:
        torch.set_num_threads(threads)
    assert chosen == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]  # round-robin, each set before any work
