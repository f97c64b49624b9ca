"""`sandbox report` on a study laid out like a real run's, built with Optuna directly (nothing trains)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from sandbox.search import plots
from sandbox.search.report import figures, named_view, short_name, short_names, write_report
from sandbox.search.storage import BUDGET_ATTR, STUDY_ATTR

WIDTH = "stages[0].modules[0].branches[1].out"
TYPE = "stages[0].modules[0].branches[1].type"
DISTRIBUTIONS = {
    "stem.out": IntDistribution(4, 16, step=4),
    WIDTH: CategoricalDistribution((8, 16)),
    TYPE: CategoricalDistribution(("conv3x3", "double3x3")),
}


def add(
    study: optuna.Study,
    state: TrialState,
    value: float | None = None,
    curve: dict[int, float] | None = None,
    constraint: float | None = None,
    **attrs: Any,
) -> None:
    params = {"stem.out": 8, WIDTH: 16, TYPE: "conv3x3"}
    study.add_trial(
        create_trial(
            state=state,
            value=value,
            params=params,
            distributions=DISTRIBUTIONS,
            user_attrs=attrs,
            intermediate_values=curve or {},
            system_attrs={} if constraint is None else {"constraints": [constraint]},
        )
    )


def trained(study: optuna.Study, val: float, flops: int) -> None:
    """A trial trained to the end: 3 epochs, its curve climbing to `val`."""
    curve = {1: val - 0.1, 2: val - 0.05, 3: val}
    add(
        study,
        TrialState.COMPLETE,
        val,
        curve,
        flops - 16e6,
        flops=flops,
        epochs_trained=3,
        test_accuracy=val - 0.01,
        params=flops // 1000,
    )


def make_study(run_dir: Path) -> optuna.Study:
    """Trials 0 and 6 failed, so a result's number is not its place among the results."""
    run_dir.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name="tiny", storage=f"sqlite:///{run_dir / 'study.db'}", direction="maximize")
    study.set_user_attr(BUDGET_ATTR, 16_000_000)
    study.set_user_attr(STUDY_ATTR, {"layout": 2})  # what marks a sandbox search's study
    add(study, TrialState.FAIL, error="RuntimeError: boom")
    trained(study, 0.80, 2_000_000)
    add(study, TrialState.COMPLETE, 0.0, None, 4e6, flops=20_000_000, over_budget=True)
    add(study, TrialState.PRUNED, None, {1: 0.5, 2: 0.55}, -13e6, flops=3_000_000, epochs_trained=2)
    add(study, TrialState.COMPLETE, 0.0, None, 1e12, invalid="stages[0]: every branch is none")
    add(study, TrialState.COMPLETE, 0.0, None, -12e6, flops=4_000_000, params=1500, under_floor=True)
    add(study, TrialState.FAIL, error="RuntimeError: boom")
    trained(study, 0.85, 5_000_000)
    return study


def draw(study: optuna.Study, name: str, run_dir: Path | None = None) -> Figure:
    return figures(study, run_dir)[name]()


def labelled(figure: Figure, start: str) -> Any:
    (artist,) = [a for a in [*figure.axes[0].lines, *figure.axes[0].collections] if a.get_label().startswith(start)]
    return artist


def test_short_names_are_readable_and_consistent() -> None:
    assert short_name("stages[1].modules[0].branches[2].out") == "s1.m0.b2.out"
    assert short_name("stages.1.modules.0.branches.0.out") == "s1.m0.b0.out"
    assert short_name("stages[2]=#0.modules[0].branches[1].reduce") == "s2=#0.m0.b1.reduce"
    assert short_name("head.dropout") == "head.dropout"
    clash = ["stages[1].modules[0].out", "s1.m0.out"]  # would read alike: the full paths stay
    assert short_names(clash) == {path: path for path in clash}


def test_the_view_keeps_real_numbers_and_only_results(tmp_path: Path) -> None:
    view = named_view(make_study(tmp_path).trials)
    assert [(t.number, t.value) for t in view.trials if t.state == TrialState.COMPLETE] == [(1, 0.80), (7, 0.85)]
    assert set(view.trials[7].params) == {"stem.out", "s0.m0.b1.out", "s0.m0.b1.type"}


def test_accuracy_vs_flops_draws_real_numbers_grey_candidates_budget_and_pruned(tmp_path: Path) -> None:
    figure = draw(make_study(tmp_path), "accuracy_vs_flops.png")
    ax = figure.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["#1", "#7"]
    grey = labelled(figure, "never trained")
    assert list(grey.get_xdata()) == [20.0, 4.0] and grey.get_color() == plots.GREY
    assert (
        "over budget 1" in grey.get_label() and "under floor 1" in grey.get_label() and "invalid 1" in grey.get_label()
    )
    assert list(labelled(figure, "budget").get_xdata()) == [16.0, 16.0]
    pruned = labelled(figure, "pruned")
    assert isinstance(pruned, PathCollection) and pruned.get_offsets().tolist() == [[3.0, 0.55]]
    trained = labelled(figure, "trained to the end")
    assert trained.get_offsets().tolist() == [[2.0, 0.80], [5.0, 0.85]]  # no stand-in 0.0 drawn
    assert list(labelled(figure, "Pareto front").get_xdata()) == [2.0, 5.0]


def test_the_reference_point_is_where_the_comparison_measured_it(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    from sandbox.search.reference import Measured, write_comparison  # the file as the search writes it

    best = Measured("best (trial 7)", 5_000_000, (0, 1), (0.85, 0.86), (0.84, 0.85))
    write_comparison(best, Measured("reference", 32_800_000, (0, 1), (0.86, 0.88), (0.85, 0.87)), tmp_path)
    figure = draw(study, "accuracy_vs_flops.png", tmp_path)
    (container,) = figure.axes[0].containers  # the errorbar: mean and range over the seeds
    assert "mean of 2 seeds" in container.get_label()
    assert container.lines[0].get_xydata().tolist() == [[32.8, pytest.approx(0.87)]]


def test_best_so_far_is_plotted_against_epochs_spent_in_trial_order(tmp_path: Path) -> None:
    figure = draw(make_study(tmp_path), "optimization_history.png")
    step = labelled(figure, "best so far")
    assert list(step.get_xdata()) == [3, 8, 8] and list(step.get_ydata()) == [0.80, 0.85, 0.85]  # 3 + 2 pruned + 3
    assert [t.get_text() for t in figure.axes[0].texts] == ["#1", "#7"]


def test_learning_curves_have_a_legend_by_outcome_not_by_trial(tmp_path: Path) -> None:
    figure = draw(make_study(tmp_path), "intermediate_values.png")
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert legend == ["trained to the end (2)", "pruned (1)", "best: trial #7"]


def test_report_html_holds_the_plots_and_the_leaderboard(tmp_path: Path) -> None:
    outcome = write_report(make_study(tmp_path), tmp_path)
    html = (tmp_path / "report.html").read_text()
    drawn = [name for name, why in outcome.items() if not why and name.endswith(".png")]
    assert {"accuracy_vs_flops.png", "optimization_history.png", "choices.png"} <= set(drawn)
    assert html.count("data:image/png;base64,") == len(drawn)
    assert 'id="trial-7" class="tied"' in html and 'id="trial-2" class="grey"' in html  # the best, bold
    assert '<td class="text">s0.m0.b1.out</td><td>stages[0].modules[0].branches[1].out</td>' in html
    for name in drawn:
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG"


def test_the_command_writes_the_report(tmp_path: Path, cli) -> None:
    make_study(tmp_path / "run")
    result = cli("report", tmp_path / "run")
    assert result.code == 0, result.err
    assert "report.html" in result.out and (tmp_path / "run" / "leaderboard.csv").is_file()


def empty_study(run_dir: Path) -> None:
    run_dir.mkdir()
    study = optuna.create_study(study_name="tiny", storage=f"sqlite:///{run_dir / 'study.db'}")
    study.set_user_attr(STUDY_ATTR, {"layout": 2})  # as a search stores it before its first trial


@pytest.mark.parametrize("directions", [["maximize"], ["maximize", "minimize"]], ids=["one", "multi-objective"])
def test_a_study_not_made_by_a_search_is_one_line(tmp_path: Path, cli, directions: list[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    foreign = optuna.create_study(study_name="theirs", storage=f"sqlite:///{run / 'study.db'}", directions=directions)
    foreign.optimize(lambda trial: [trial.suggest_float("x", 0, 1)] * len(directions), n_trials=2)
    result = cli("report", run, "--study", "theirs")
    assert result.code == 2, result.err  # was a TypeError traceback from the leaderboard
    assert result.err == "error: study 'theirs' was not made by a sandbox search: report reads only those\n"
    assert not (run / "report.html").exists()


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda run: None, "is not a directory"),
        (lambda run: run.mkdir(), "holds no study.db"),
        (lambda run: (run.mkdir(), (run / "study.db").touch()), "is empty (0 bytes)"),
        (empty_study, "holds no trials yet"),
    ],
    ids=["missing", "empty-dir", "empty-db", "no-trials"],
)
def test_nothing_to_report_is_one_line_and_exit_2(tmp_path: Path, cli, make: Any, says: str) -> None:
    run = tmp_path / "run"
    make(run)
    result = cli("report", run)
    assert result.code == 2 and says in result.err and len(result.err.strip().splitlines()) == 1
    assert not (run / "report.html").exists()


def test_the_page_answers_first_the_pick_against_the_reference_paired(tmp_path: Path) -> None:
    import numpy as np

    from sandbox.paired import pack
    from sandbox.search.reference import Measured, write_comparison
    from sandbox.search.report import record_settings

    study = make_study(tmp_path)
    record_settings(study, {"sampler": "tpe", "epochs": 3})
    bits = np.arange(200) < 170
    better = {"val": pack(bits), "test": pack(bits)}
    worse = {"val": pack(np.arange(200) < 150), "test": pack(np.arange(200) < 160)}
    best = Measured("best (trial 7)", 5_000_000, (0,), (0.85,), (0.85,), (better,))
    write_comparison(best, Measured("reference", 32_800_000, (0,), (0.75,), (0.80,), (worse,)), tmp_path)
    write_report(study, tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert html.index("The answer") < html.index("Settings") < html.index("<img")
    assert "+10.00 points (+5.84 to +14.16), p 1.9e-06" in html  # 20 of 200 validation images apart
    assert "+5.00 points (+1.98 to +8.02), p 0.002" in html  # 10 test images
    assert '<th class="text">sampler</th><td class="text">tpe</td>' in html
    assert "<h2>Accuracy against FLOPs</h2>" in html and ".png</h2>" not in html


def test_importances_are_left_out_below_the_threshold_with_the_count(tmp_path: Path) -> None:
    outcome = write_report(make_study(tmp_path), tmp_path)
    assert outcome["param_importances.png"] == "skipped: 2 trials trained to the end; importances need at least 10"
    assert "skipped: 2 trials" in (tmp_path / "report.html").read_text()


def test_accuracy_by_choice_has_a_panel_per_choice_in_network_order(tmp_path: Path) -> None:
    figure = draw(make_study(tmp_path), "choices.png")
    titles = [ax.get_title() for ax in figure.axes if ax.get_visible()]
    assert titles == ["stem.out", "s0.m0.b1.out", "s0.m0.b1.type"]
