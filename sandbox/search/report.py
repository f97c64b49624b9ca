"""A search's report: PNG plots in RUN_DIR/plots/ and RUN_DIR/report.html (plots and leaderboard, no server).

Every plot shows the study's own trial numbers. The report's figures (`sandbox.search.plots`) read
the trials directly. Optuna's parallel-coordinate and importance plots need a study, so they read a
*view*: an in-memory study holding, under each trial's number, that trial if it is a result and a
FAIL placeholder (which every plot skips) otherwise, so no stand-in value of an over-budget,
screened-out or invalid candidate is drawn and trial 28 stays trial 28. The view's parameters carry
short names (`s1.m0.b2.out` for `stages[1].modules[0].branches[2].out`), listed in the HTML.
"""

from __future__ import annotations

import io
import json
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import optuna
from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState, create_trial
from optuna.visualization import matplotlib as optuna_plots

from sandbox.search import plots
from sandbox.search.html import page
from sandbox.search.results import is_result, pareto_front, summary
from sandbox.search.storage import BUDGET_ATTR

REPORT_FILE = "report.html"
PLOTS_DIR = "plots"
COMPARISON = Path("compare") / "comparison.json"  # as sandbox.search.reference writes it (that module loads torch)
_SHORT = {"stages": "s", "modules": "m", "branches": "b"}
_INDEXED = re.compile(r"\b(stages|modules|branches)(?:\[(\d+)\]|\.(\d+))")


def short_name(path: str) -> str:
    """`stages[1].modules[0].branches[2].out` (or `stages.1.modules.0...`) → `s1.m0.b2.out`."""
    return _INDEXED.sub(lambda m: f"{_SHORT[m[1]]}{m[2] or m[3]}", path)


def short_names(paths: Iterable[str]) -> dict[str, str]:
    """Full path → short name, for all of them; the full paths where two would read alike."""
    paths = sorted(set(paths))
    short = {path: short_name(path) for path in paths}
    return short if len(set(short.values())) == len(short) else {path: path for path in paths}


def named_view(trials: Sequence[FrozenTrial]) -> optuna.Study:
    """The results under their own numbers, with short parameter names, validation accuracy their value."""
    names = short_names(name for trial in trials for name in trial.params)
    view = optuna.create_study(direction="maximize")
    for trial in sorted(trials, key=lambda t: t.number):
        if not (is_result(trial) and not trial.user_attrs.get("screened_out")):
            view.add_trial(create_trial(state=TrialState.FAIL))  # keeps the numbering
            continue
        view.add_trial(
            create_trial(
                value=trial.values[0],
                params={names[key]: value for key, value in trial.params.items()},
                distributions={names[key]: dist for key, dist in trial.distributions.items()},
            )
        )
    return view


def budget_mflops(study: optuna.Study) -> float | None:
    """The FLOP budget the search ran with, in MFLOPs (None: no budget, or a study that predates storing it)."""
    budget = study.user_attrs.get(BUDGET_ATTR)
    return budget / 1e6 if isinstance(budget, (int, float)) else None


def reference_of(run_dir: Path | None) -> plots.Reference | None:
    """The reference network as the search's comparison measured it, if it ran."""
    if run_dir is None:
        return None
    try:
        measured = json.loads((run_dir / COMPARISON).read_text())["reference"]
        return plots.Reference(str(measured["name"]), measured["flops"] / 1e6, tuple(map(float, measured["val"])))
    except (OSError, ValueError, KeyError, TypeError):  # no comparison, or one written by hand: no point
        return None


def figures(study: optuna.Study, run_dir: Path | None) -> dict[str, Callable[[], Figure]]:
    """File name → a function drawing that plot."""
    trials = study.get_trials(deepcopy=False)
    shown = plots.points(trials)
    front = [t.number for t in pareto_front(trials)]
    view = named_view(trials)
    target = "validation accuracy"
    return {
        "accuracy_vs_flops.png": lambda: plots.accuracy_vs_flops(
            shown, front, budget_mflops(study), reference_of(run_dir)
        ),
        "optimization_history.png": lambda: plots.best_so_far(shown, plots.epochs_spent(trials)),
        "intermediate_values.png": lambda: plots.learning_curves(shown),
        "parallel_coordinate.png": lambda: _figure(optuna_plots.plot_parallel_coordinate(view, target_name=target)),
        "param_importances.png": lambda: _figure(optuna_plots.plot_param_importances(view, target_name=target)),
    }


def _figure(drawn: object) -> Figure:
    figure = getattr(drawn, "figure", None)
    if not isinstance(figure, Figure):
        raise ValueError("nothing to draw")
    figure.set_size_inches(*plots.SIZE)
    figure.tight_layout()
    return figure


def _draw_all(study: optuna.Study, out_dir: Path, run_dir: Path | None) -> dict[str, tuple[bytes, str]]:
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, tuple[bytes, str]] = {}
    for name, draw in figures(study, run_dir).items():
        plt.close("all")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                figure = draw()
        except (ValueError, RuntimeError, ZeroDivisionError) as err:  # too few trials for this plot
            drawn[name] = (b"", f"skipped: {err}")
            continue
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110)
        (out_dir / name).write_bytes(buffer.getvalue())
        drawn[name] = (buffer.getvalue(), "")
    plt.close("all")
    return drawn


def write_report(study: optuna.Study, run_dir: Path) -> dict[str, str]:
    """The plots in RUN_DIR/plots/ and RUN_DIR/report.html showing them with the leaderboard; returns
    {file name: why skipped or ''}, report.html included."""
    drawn = _draw_all(study, run_dir / PLOTS_DIR, run_dir)
    trials = study.get_trials(deepcopy=False)
    names = short_names(name for trial in trials for name in trial.params)
    html = page(
        title=f"Search {study.study_name!r}",
        summary=summary(trials),
        images={name: png for name, (png, _) in drawn.items() if png},
        skipped={name: why for name, (_, why) in drawn.items() if why},
        trials=trials,
        names={short: full for full, short in names.items() if short != full},
    )
    temp = run_dir / f"{REPORT_FILE}.tmp"
    temp.write_text(html)
    temp.replace(run_dir / REPORT_FILE)
    return {**{name: why for name, (_, why) in drawn.items()}, REPORT_FILE: ""}
