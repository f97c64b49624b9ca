"""How many workers a search runs: one per usable core by default, capped by the trials left and memory."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

import sandbox.search.workers as workers
from sandbox.search.workers import WORKER_MEMORY, available_memory, cap_workers, plan_workers
from sandbox.spec.search import search_config
from tests.search.test_objective import make_run

GIB = 2**30


@pytest.fixture
def eight_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "usable_cores", lambda: 8)


def test_the_default_is_one_worker_per_usable_core(eight_cores) -> None:
    assert search_config({}).workers is None
    assert cap_workers(None, to_train=20, memory=None) == (8, None)


def test_the_default_is_capped_silently_by_the_trials_left_and_memory(eight_cores) -> None:
    assert cap_workers(None, to_train=3, memory=None) == (3, None)
    assert cap_workers(None, to_train=20, memory=2 * WORKER_MEMORY + 1) == (2, None)


def test_workers_asked_beyond_the_trials_left_are_capped_in_one_line(eight_cores) -> None:
    # --workers 4 --trials 1 took 3.1 GB for one trial
    assert cap_workers(4, to_train=1, memory=64 * GIB) == (
        1,
        "workers: 1 instead of the 4 asked (1 trial left to train)",
    )


def test_workers_asked_beyond_memory_are_capped_in_one_line(eight_cores) -> None:
    count, note = cap_workers(16, to_train=30, memory=5 * GIB)
    assert count == 5 * GIB // WORKER_MEMORY == 6
    assert note == "workers: 6 instead of the 16 asked (memory for 6 at about 0.78 GiB each, 5.0 GiB available)"


def test_workers_asked_within_the_caps_are_kept(eight_cores) -> None:
    assert cap_workers(12, to_train=12, memory=None) == (12, None)  # more than the cores, if asked
    assert cap_workers(1, to_train=0, memory=WORKER_MEMORY // 2) == (1, None)  # never none


def test_available_memory_reads_meminfo_and_gives_up_quietly(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    2048 kB\n")
    assert available_memory(meminfo) == 2048 * 1024
    meminfo.write_text("MemTotal: 16000000 kB\n")  # kernels before 3.14 have no MemAvailable
    assert available_memory(meminfo) is None
    assert available_memory(tmp_path / "missing") is None


def test_a_resumed_search_runs_no_more_workers_than_it_has_trials_left(
    tmp_path: Path, eight_cores, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(workers, "available_memory", lambda: None)
    run = make_run(tmp_path, trials=5, workers=4)
    study = optuna.create_study()
    for _ in range(2):
        study.add_trial(create_trial(value=0.5, state=TrialState.COMPLETE))
    study.add_trial(create_trial(value=0.0, state=TrialState.COMPLETE, user_attrs={"over_budget": True}))  # free
    study.enqueue_trial({})  # a retry waiting: counted, but still to train
    planned = plan_workers(run, study)
    assert planned.config.workers == 3  # 5 places - 3 counted + 1 waiting
    assert capsys.readouterr().out == "workers: 3 instead of the 4 asked (3 trials left to train)\n"
