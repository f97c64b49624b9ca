"""A search's report: PNG plots in RUN_DIR/plots/ and RUN_DIR/report.html, which answers the search at
the top (the pick against the reference, its architecture, the settings), then the plots, each with
a title and a caption, then the leaderboard (no server needed).

Every plot shows the study's own trial numbers. The report's figures (`sandbox.search.plots`) read
the trials directly. Optuna's parallel-coordinate and importance plots need a study, so they read a
*view*: an in-memory study holding, under each trial's number, that trial if it is a result and a
FAIL placeholder (which every plot skips) otherwise, so no stand-in value of an over-budget,
under-floor or invalid candidate is drawn and trial 28 stays trial 28. The view's
parameters carry short names (`s1.m0.b2.out` for `stages[1].modules[0].branches[2].out`), listed in
the HTML. Importances rest on the results alone: below `MIN_IMPORTANCE_TRIALS` they are left out,
with the count, since fANOVA on a handful of trials ranks noise.
"""

from __future__ import annotations

import io
import json
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from html import escape
from pathlib import Path
from typing import Any

import optuna
from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState, create_trial
from optuna.visualization import matplotlib as optuna_plots

from sandbox.runs import atomic_write
from sandbox.search import plots
from sandbox.search.html import Figures, page
from sandbox.search.record import SPEC
from sandbox.search.results import choices, is_result, pareto_front, ranked, summary
from sandbox.search.run import SearchRun
from sandbox.search.storage import BUDGET_ATTR, STUDY_ATTR

REPORT_FILE = "report.html"
PLOTS_DIR = "plots"
COMPARISON = Path("compare") / "comparison.json"  # as sandbox.search.reference writes it (that module loads torch)
SETTINGS_ATTR = "settings"  # the study's user attribute with the last search run's settings, for the report
MIN_IMPORTANCE_TRIALS = 10  # results below which importances are left out
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
        if not is_result(trial):
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


TITLES = {  # file name: (title, caption)
    "accuracy_vs_flops.png": (
        "Accuracy against FLOPs",
        "Validation accuracy of every candidate against its FLOPs per image: the Pareto front, the budget, "
        "the reference network; grey ticks along the bottom were never trained.",
    ),
    "optimization_history.png": (
        "Best so far against training spent",
        "The best validation accuracy found, against the epochs trained by all trials so far in trial order.",
    ),
    "intermediate_values.png": (
        "Learning curves",
        "Validation accuracy after each epoch of every trained trial, coloured by outcome; the best in black.",
    ),
    "choices.png": (
        "Accuracy by choice",
        "Validation accuracy of each result against each searched choice, in network order; the best three "
        "coloured (one panel per choice: readable where a parallel-coordinate plot is not).",
    ),
    "param_importances.png": (
        "Importances",
        "How much of the validation accuracy's variance each choice explains (Optuna's fANOVA) over the results.",
    ),
}


def figures(study: optuna.Study, run_dir: Path | None) -> dict[str, Callable[[], Figure]]:
    """File name → a function drawing that plot."""
    trials = study.get_trials(deepcopy=False)
    shown = plots.points(trials)
    front = [t.number for t in pareto_front(trials)]
    view = named_view(trials)
    names = short_names(name for trial in trials for name in trial.params)
    results = ranked(trials)
    return {
        "accuracy_vs_flops.png": lambda: plots.accuracy_vs_flops(
            shown, front, budget_mflops(study), reference_of(run_dir)
        ),
        "optimization_history.png": lambda: plots.best_so_far(shown, plots.epochs_spent(trials)),
        "intermediate_values.png": lambda: plots.learning_curves(shown),
        "choices.png": lambda: plots.by_choice(results, choices(trials), names),
        "param_importances.png": lambda: importances(view, len(results)),
    }


def importances(view: optuna.Study, results: int) -> Figure:
    """Optuna's importance plot, titled with the number of results it rests on; too few is a skip."""
    if results < MIN_IMPORTANCE_TRIALS:
        raise ValueError(f"{results} trials trained to the end; importances need at least {MIN_IMPORTANCE_TRIALS}")
    figure = _figure(optuna_plots.plot_param_importances(view, target_name="validation accuracy"))
    figure.axes[0].set_title(f"Importances (fANOVA over {results} trials trained to the end)", loc="left")
    return figure


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
        png = buffer.getvalue()
        atomic_write(out_dir / name, partial(Path.write_bytes, data=png))
        drawn[name] = (png, "")
    plt.close("all")
    return drawn


def record_settings(study: optuna.Study, settings: dict[str, Any]) -> None:
    """Keep this run's settings in the study (the report reads them from there, wherever it runs)."""
    if study.user_attrs.get(SETTINGS_ATTR) != settings:
        study.set_user_attr(SETTINGS_ATTR, settings)


def search_settings(search: SearchRun, spec: str) -> dict[str, Any]:
    """What the report lists of a search run's settings (`record_settings` keeps them in the study)."""
    config = search.config
    recipe = search.recipe()
    return {
        "spec": spec,
        "budget": f"{config.budget / 1e6:.2f} MFLOPs" if config.budget else "none",
        "sampler": config.sampler,
        "pruner": config.pruner,
        "trials": config.trials,
        "epochs": recipe["epochs"],
        "seed": config.seed,
        "data": recipe["data"],
        "device": search.device,
        "workers": config.workers,
        "threads per worker": search.threads or "each worker's share of the cores",
    }


def settings_of(study: optuna.Study) -> dict[str, Any]:
    """The search's settings as the report lists them: what the last run recorded, the wall time its
    trials took (first start to last end), the trials' device and threads."""
    trials = study.get_trials(deepcopy=False)
    shown = dict(study.user_attrs.get(SETTINGS_ATTR) or {})
    if not shown:  # a study from before settings were kept: what the study itself holds
        recipe = (study.user_attrs.get(STUDY_ATTR) or {}).get("recipe") or {}
        shown = {key: recipe[key] for key in ("epochs", "seed", "data") if key in recipe}
        budget = budget_mflops(study)
        shown["budget"] = f"{budget:.2f} MFLOPs" if budget is not None else "none"
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    if starts and ends:
        minutes = (max(ends) - min(starts)).total_seconds() / 60
        shown["wall time"] = f"{minutes:.1f} min (the first trial's start to the last one's end)"
    shown["outcome"] = summary(trials)
    return shown


def comparison_of(run_dir: Path) -> dict[str, Any] | None:
    """The comparison with the reference network as the search wrote it, if it ran."""
    try:
        measured = json.loads((run_dir / COMPARISON).read_text())
    except (OSError, ValueError):
        return None
    return measured if isinstance(measured, dict) and {"best", "reference"} <= measured.keys() else None


def _architecture(best: FrozenTrial, run_dir: Path) -> str:
    """The pick's table and diagram; a line saying why not when its spec no longer builds here."""
    from sandbox.errors import SandboxError
    from sandbox.search.architecture import architecture_html

    try:
        return architecture_html(best.user_attrs[SPEC], run_dir)
    except (SandboxError, KeyError) as err:  # e.g. a plugin file of another machine
        return f"<p>Trial {best.number}'s spec does not build here: {escape(str(err))}</p>"


def write_report(study: optuna.Study, run_dir: Path) -> dict[str, str]:
    """The plots in RUN_DIR/plots/ and RUN_DIR/report.html showing them with the answer, the settings and
    the leaderboard; returns {file name: why skipped or ''}, report.html included."""
    drawn = _draw_all(study, run_dir / PLOTS_DIR, run_dir)
    trials = study.get_trials(deepcopy=False)
    names = short_names(name for trial in trials for name in trial.params)
    best = ranked(trials)
    html = page(
        title=f"Search {study.study_name!r}",
        trials=trials,
        settings=settings_of(study),
        comparison=comparison_of(run_dir),
        figures=Figures(
            titles=TITLES,
            images={name: png for name, (png, _) in drawn.items() if png},
            skipped={name: why for name, (_, why) in drawn.items() if why},
        ),
        names=names,
        architecture=_architecture(best[0], run_dir) if best else "",
    )
    atomic_write(run_dir / REPORT_FILE, lambda temporary: temporary.write_text(html))
    return {**{name: why for name, (_, why) in drawn.items()}, REPORT_FILE: ""}
