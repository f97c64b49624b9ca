"""PNG plots of a search, drawn by `optuna.visualization.matplotlib` (matplotlib only).

The plots read a *view* of the study: an in-memory copy holding only what may be shown. Stand-in
values of over-budget or invalid candidates never reach a plot.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")  # files only; no display needed

import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from optuna.trial import FrozenTrial, TrialState, create_trial  # noqa: E402
from optuna.visualization import matplotlib as optuna_plots  # noqa: E402

from sandbox.search.results import is_result  # noqa: E402


def result_view(trials: Sequence[FrozenTrial], directions: Sequence[Literal["maximize", "minimize"]]) -> optuna.Study:
    """Result trials, plus pruned ones (their curves are real), in a fresh in-memory study."""
    view = optuna.create_study(directions=list(directions))
    for trial in trials:
        if is_result(trial) or (trial.state == TrialState.PRUNED and trial.intermediate_values):
            view.add_trial(_copy(trial, trial.values if is_result(trial) else None, trial.state))
    return view


def accuracy_flops_view(trials: Sequence[FrozenTrial]) -> optuna.Study:
    """Result trials as a two-objective study (accuracy up, FLOPs down) for the Pareto plot."""
    view = optuna.create_study(directions=["maximize", "minimize"])
    for trial in filter(is_result, trials):
        view.add_trial(_copy(trial, [trial.values[0], float(trial.user_attrs["flops"])], TrialState.COMPLETE))
    return view


def _copy(trial: FrozenTrial, values: Sequence[float] | None, state: TrialState) -> FrozenTrial:
    return create_trial(
        state=state,
        values=list(values) if values is not None else None,
        params=trial.params,
        distributions=trial.distributions,
        user_attrs=trial.user_attrs,
        intermediate_values=trial.intermediate_values,
    )


def write_plots(study: optuna.Study, out_dir: Path) -> dict[str, str]:
    """Write every plot that the study's trials allow; returns {file name: why skipped or ''}."""
    trials = study.get_trials(deepcopy=False)
    single = result_view(trials, ["maximize"])
    pareto = accuracy_flops_view(trials)
    plots: dict[str, Callable[[], object]] = {
        "optimization_history.png": lambda: optuna_plots.plot_optimization_history(
            single, target_name="validation accuracy"
        ),
        "accuracy_vs_flops.png": lambda: optuna_plots.plot_pareto_front(
            pareto, target_names=["validation accuracy", "FLOPs per image"]
        ),
        "param_importances.png": lambda: optuna_plots.plot_param_importances(single, target_name="validation accuracy"),
        "intermediate_values.png": lambda: optuna_plots.plot_intermediate_values(single),
    }
    outcome: dict[str, str] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, draw in plots.items():
        plt.close("all")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = draw()
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            outcome[name] = f"skipped: {err}"
            continue
        figure = getattr(axes, "figure", None) or plt.gcf()
        figure.set_size_inches(9, 6)
        figure.tight_layout()
        figure.savefig(out_dir / name, dpi=110)
        outcome[name] = ""
    plt.close("all")
    return outcome
