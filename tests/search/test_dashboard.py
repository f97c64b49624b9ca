"""optuna-dashboard (0.21, the dev extra) reads a search's study: the JSON its own WSGI app serves.

The dashboard decides feasibility from the trial system attribute `constraints`, a list (the format
Optuna's samplers write from `constraints_func`); Optuna 5's `trial.set_constraint` writes
`constraints:<name>` keys instead, which the dashboard does not read.
"""

from __future__ import annotations

import json
import wsgiref.util
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from sandbox.search.objective import Objective
from sandbox.search.storage import BUDGET_ATTR, DIMENSIONS_ATTR, open_study
from tests.search.spaces import tiny_space
from tests.search.test_objective import make_run, stand_in

dashboard = pytest.importorskip("optuna_dashboard", reason="optuna-dashboard comes with the dev extra")

BIG = {"stem.out": 16, "stages[0].modules[0].branches[0].out": 8, "stages[0].modules[0].branches[1].type": "double3x3"}
SMALL = {"stem.out": 4, "stages[0].modules[0].branches[0].out": 4, "stages[0].modules[0].branches[1].type": "conv3x3"}


def get(app: Any, path: str) -> Any:
    """GET `path` from the dashboard's WSGI app, as its web page does; the JSON answer."""
    environ: dict[str, Any] = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ["PATH_INFO"] = path
    status: list[str] = []
    body = b"".join(app(environ, lambda code, headers, exc_info=None: status.append(code)))
    assert status[0].startswith("200"), (status, body[:200])
    return json.loads(body)


def detail(storage: str) -> dict[str, Any]:
    """The study as the dashboard's study page receives it."""
    app = dashboard.wsgi(storage)
    (study,) = get(app, "/api/studies")["study_summaries"]
    return get(app, f"/api/studies/{study['study_id']}")


@pytest.mark.parametrize(
    ("objective", "names"),
    [("accuracy", ["val_accuracy"]), (["accuracy", "flops"], ["val_accuracy", "flops"])],
    ids=["one", "two"],
)
def test_the_metrics_are_named(tmp_path: Path, objective: Any, names: list[str]) -> None:
    run = make_run(tmp_path, tiny_space(objective=objective))
    open_study(run)
    assert detail(run.storage_url)["objective_names"] == names


def test_the_budget_and_the_dimensions_read_as_text(tmp_path: Path) -> None:
    run = make_run(tmp_path, budget=1_000_000)
    open_study(run)
    attrs = {a["key"]: a["value"] for a in detail(run.storage_url)["user_attrs"]}
    assert attrs[BUDGET_ATTR] == "1000000"
    assert attrs[DIMENSIONS_ATTR].startswith("stem.out: int in [4, 16], step 4; stages[0].modules[0].branches[0].out")


def run_both(tmp_path: Path) -> dict[int, dict[str, Any]]:
    """One over-budget and one trained candidate, through the search's own objective; the dashboard's trials."""
    run = make_run(tmp_path, budget=1_000_000)  # BIG is 2.1 MFLOPs, SMALL 0.7
    study = open_study(run)
    for params in (BIG, SMALL):
        study.enqueue_trial(params)
        study.optimize(Objective(run, "cpu", train=stand_in([])), n_trials=1)
    assert study.trials[0].user_attrs.get("over_budget") and "over_budget" not in study.trials[1].user_attrs
    return {trial["number"]: trial for trial in detail(run.storage_url)["trials"]}


def test_the_dashboard_sees_the_trials_values_today(tmp_path: Path) -> None:
    trials = run_both(tmp_path)
    assert [trials[n]["state"] for n in (0, 1)] == ["Complete", "Complete"]
    assert trials[0]["values"] == [0.0]  # the stand-in, which the dashboard plots as a value


def test_an_over_budget_trial_is_infeasible_in_the_dashboard(tmp_path: Path) -> None:
    trials = run_both(tmp_path)
    assert trials[0]["constraints"] and all(c > 0 for c in trials[0]["constraints"])
    assert trials[1]["constraints"] and all(c <= 0 for c in trials[1]["constraints"])


def test_the_list_format_is_read_by_optuna_and_by_the_dashboard(tmp_path: Path) -> None:
    """The fix proposed for objective.py: the list, as Optuna's `constraints_func` writes it."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, direction="maximize")
    for over in (1.1e6, -0.3e6):
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.5, system_attrs={"constraints": [over]}))
    assert [t.constraints for t in study.trials] == [{"0": 1.1e6}, {"0": -0.3e6}]  # what the samplers read
    assert [t["constraints"] for t in detail(storage)["trials"]] == [[1.1e6], [-0.3e6]]


def test_the_readable_view_shows_no_stand_in_and_attributes_in_words(tmp_path: Path) -> None:
    """`sandbox dashboard`'s storage: the over-budget draw is no Complete point with value 0, a repeat
    no point of its own, the study's `search` mapping and the per-image records read as words."""
    from sandbox.paired import pack
    from sandbox.search.dashboard import ReadableStorage
    from sandbox.search.storage import STUDY_ATTR

    def train(*args: Any, **kwargs: Any) -> dict[str, Any]:  # with a per-image record, as training keeps one
        return {**stand_in([])(*args, **kwargs), "correct": {"val": pack([True, False, True])}}

    run = make_run(tmp_path, budget=1_000_000)
    study = open_study(run)
    for params in (BIG, SMALL, SMALL):  # over budget, trained, repeated
        study.enqueue_trial(params)
        study.optimize(Objective(run, "cpu", train=train), n_trials=1)
    app = dashboard.wsgi(ReadableStorage(optuna.storages.get_storage(run.storage_url)))
    (summary,) = get(app, "/api/studies")["study_summaries"]
    shown = get(app, f"/api/studies/{summary['study_id']}")
    trials = {t["number"]: t for t in shown["trials"]}
    assert [trials[n]["state"] for n in (0, 1, 2)] == ["Pruned", "Complete", "Pruned"]
    assert "values" not in trials[0] and "values" not in trials[2] and trials[1]["values"] == [0.5]
    why = {a["key"]: a["value"] for a in trials[2]["user_attrs"]}["why_no_value"]
    assert why.startswith("same candidate as trial 1")
    record = {a["key"]: a["value"] for a in trials[1]["user_attrs"]}["correct_val"]
    assert record == "2 of 3 images right (per-image record)"
    search = {a["key"]: a["value"] for a in shown["user_attrs"]}[STUDY_ATTR]
    assert search.startswith("layout: 2; objective: accuracy") and "recipe: train: batch_size: 64" in search


def test_the_command_refuses_a_directory_without_a_study_in_one_line(tmp_path: Path, cli) -> None:
    result = cli("dashboard", tmp_path)
    assert result.code == 2 and "holds no study.db" in result.err and len(result.err.strip().splitlines()) == 1
