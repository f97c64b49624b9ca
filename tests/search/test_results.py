"""The leaderboard: ties with the best by a paired test, a column per choice in network order, seconds spent."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from sandbox.paired import pack
from sandbox.search.results import choices, export_best, format_leaderboard, is_result, rows, write_leaderboard
from tests.at_once import at_once

DISTRIBUTIONS = {
    "head.dropout": CategoricalDistribution((0.0, 0.2)),
    "stages[1].modules[0].branches[0].out": IntDistribution(8, 16, step=8),
    "stages[0].modules[0].branches[10].out": IntDistribution(8, 16, step=8),
    "stages[0].modules[0].branches[2].type": CategoricalDistribution(("conv3x3", "none")),
    "stem.out": IntDistribution(8, 16, step=8),
}
NETWORK_ORDER = [
    "stem.out",
    "stages[0].modules[0].branches[2].type",
    "stages[0].modules[0].branches[10].out",  # 10 after 2: indices are numbers
    "stages[1].modules[0].branches[0].out",
    "head.dropout",
]


def right(n: int, of: int = 400) -> str:
    """Per-image bits: the first `n` images right."""
    return pack(np.arange(of) < n)


def add(study: optuna.Study, value: float | None, state: TrialState = TrialState.COMPLETE, **attrs: Any) -> None:
    params = {"head.dropout": 0.2, "stages[1].modules[0].branches[0].out": 8, "stem.out": 16,
              "stages[0].modules[0].branches[10].out": 8, "stages[0].modules[0].branches[2].type": "none"}  # fmt: skip
    attrs = {"flops": 1_000_000, "params": 100, "epochs_trained": 4, **attrs}
    trial = create_trial(state=state, value=value, params=params, distributions=DISTRIBUTIONS, user_attrs=attrs)
    study.add_trial(trial)


def make_study() -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    add(study, 0.900, correct_val=right(360), seconds=50.0, test_accuracy=0.9)  # the best
    add(study, 0.895, correct_val=right(358), seconds=40.0, test_accuracy=0.9)  # 2 images apart: tied
    add(study, 0.800, correct_val=right(320), seconds=30.0, test_accuracy=0.8)  # 40 apart: worse
    add(study, 0.900, duplicate_of=0, seconds=64.6)  # a repeat copies the earlier trial's seconds
    add(study, 0.0, under_floor=True)
    return study


def test_choices_are_in_network_order() -> None:
    assert choices(make_study().trials) == NETWORK_ORDER


def test_the_leaderboard_marks_ties_by_mcnemar_and_reports_seconds_actually_spent() -> None:
    listed = {trial.number: r for trial, r in rows(make_study().trials)}
    assert [listed[n]["vs_best"].split(" ")[0] for n in (0, 1, 2)] == ["best", "tied", "worse"]
    assert listed[3]["seconds"] == 0.0 and listed[3]["epochs"] == 0  # the repeat trained nothing
    assert listed[4]["seconds"] == 0.0 and "under the FLOP floor" in listed[4]["note"]
    assert [listed[n]["seconds"] for n in (0, 1, 2)] == [50.0, 40.0, 30.0]


def test_an_under_floor_draw_is_no_result() -> None:
    assert [is_result(t) for t in make_study().trials] == [True, True, True, False, False]


def test_the_csv_has_the_mark_and_a_column_per_choice(tmp_path: Path) -> None:
    write_leaderboard(make_study().trials, tmp_path / "leaderboard.csv")
    with (tmp_path / "leaderboard.csv").open() as handle:
        reader = csv.DictReader(handle)
        header, lines = reader.fieldnames, list(reader)
    assert header is not None and header[-len(NETWORK_ORDER) :] == NETWORK_ORDER
    assert [line["vs_best"].split(" ")[0] for line in lines[:3]] == ["best", "tied", "worse"]
    assert lines[0]["stages[0].modules[0].branches[2].type"] == "none"


def test_the_printed_leaderboard_is_in_percent_and_states_the_test() -> None:
    printed = format_leaderboard(make_study().trials)
    assert "90.00%" in printed and "0.9000" not in printed
    assert "McNemar" in printed and "5%" in printed


def _export_repeatedly(trained: Path, run_dir: Path, times: int, barrier: Any, errors: Any) -> None:
    """Write the best trial's files into `run_dir` `times` times, starting with the other processes."""
    study = make_study()
    add(study, 0.95, correct_val=right(380), spec="the spec", run_dir=str(trained))
    trial = study.trials[-1]
    barrier.wait()
    for _ in range(times):
        try:
            export_best(trial, run_dir)
            write_leaderboard(study.trials, run_dir / "leaderboard.csv")
        except Exception as err:
            errors.put(repr(err))
            return


def test_searches_sharing_a_run_directory_write_its_best_and_leaderboard_at_once(tmp_path: Path) -> None:
    # two commands on one machine given the same --out and --storage finish (and report) together
    trained = tmp_path / "trials" / "0"
    (trained / "nested").mkdir(parents=True)
    (trained / "metrics.json").write_text("{}")
    (trained / "nested" / "weights.pt").write_bytes(b"w" * 100_000)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert at_once(_export_repeatedly, trained, run_dir, 30) == []
    assert (run_dir / "best" / "nested" / "weights.pt").stat().st_size == 100_000
    assert (run_dir / "best.yaml").read_text() == "the spec"
    assert sorted(p.name for p in run_dir.iterdir()) == ["best", "best.yaml", "leaderboard.csv"]  # nothing left behind
