"""What a search leaves for people: leaderboard, Pareto front, best spec and weights, summary.

Infeasible trials (over budget or invalid) carry a stand-in value for the samplers' sake; every
function here reads `is_result` first, so no stand-in is ever shown as a result.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

COLUMNS = ("trial", "state", "val_accuracy", "test_accuracy", "flops", "params", "epochs", "seconds", "note")


def is_result(trial: FrozenTrial) -> bool:
    """A trained, complete, feasible trial: its value is a real validation accuracy."""
    return (
        trial.state == TrialState.COMPLETE
        and not trial.user_attrs.get("over_budget")
        and "invalid" not in trial.user_attrs
        and "duplicate_of" not in trial.user_attrs  # shown once, under the trial that trained it
    )


def note(trial: FrozenTrial) -> str:
    attrs = trial.user_attrs
    if attrs.get("over_budget"):
        return "over budget"
    if "invalid" in attrs:
        return f"invalid: {attrs['invalid']}"
    if "duplicate_of" in attrs:
        return f"same candidate as trial {attrs['duplicate_of']}, not trained again"
    if trial.state == TrialState.PRUNED:
        return f"pruned after epoch {attrs.get('epochs_trained', '?')}"
    if trial.state == TrialState.FAIL:
        return f"failed: {attrs.get('error', 'interrupted')}"
    return trial.state.name.lower() if trial.state != TrialState.COMPLETE else ""


def ranked(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Result trials, best validation accuracy first (fewer FLOPs break ties)."""
    return sorted(filter(is_result, trials), key=lambda t: (-t.values[0], t.user_attrs.get("flops", 0)))


def pareto_front(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Result trials no other result beats on both accuracy (higher) and FLOPs (lower)."""
    results = ranked(trials)
    front: list[FrozenTrial] = []
    for trial in results:  # sorted by accuracy: keep those cheaper than every better one
        if all(trial.user_attrs["flops"] < kept.user_attrs["flops"] for kept in front):
            front.append(trial)
    return front


def row(trial: FrozenTrial) -> dict[str, Any]:
    attrs = trial.user_attrs
    trained = trial.state in (TrialState.COMPLETE, TrialState.PRUNED) and not attrs.get("over_budget")
    intermediate = trial.intermediate_values
    val = trial.values[0] if is_result(trial) else (intermediate[max(intermediate)] if intermediate else None)
    return {
        "trial": trial.number,
        "state": trial.state.name,
        "val_accuracy": val,
        "test_accuracy": attrs.get("test_accuracy") if is_result(trial) else None,
        "flops": attrs.get("flops"),
        "params": attrs.get("params"),
        "epochs": attrs.get("epochs_trained", 0) if trained else 0,
        "seconds": attrs.get("seconds"),
        "note": note(trial),
    }


def write_leaderboard(trials: Sequence[FrozenTrial], path: Path) -> None:
    """All trials as CSV, results first by rank, then the rest by number (atomic write)."""
    results = ranked(trials)
    rest = sorted((t for t in trials if not is_result(t)), key=lambda t: t.number)
    temp = path.with_suffix(".csv.tmp")
    with temp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(row(t) for t in [*results, *rest])
    os.replace(temp, path)


def format_leaderboard(trials: Sequence[FrozenTrial], limit: int = 10) -> str:
    lines = [f"{'trial':>5} {'val acc':>8} {'test acc':>8} {'MFLOPs':>9} {'params':>10} {'epochs':>6}"]
    for trial in ranked(trials)[:limit]:
        r = row(trial)
        lines.append(
            f"{r['trial']:>5} {r['val_accuracy']:>8.4f} {r['test_accuracy'] or 0:>8.4f} "
            f"{r['flops'] / 1e6:>9.2f} {r['params']:>10,} {r['epochs']:>6}"
        )
    return "\n".join(lines) if len(lines) > 1 else "(no trained candidate yet)"


def summary(trials: Sequence[FrozenTrial]) -> str:
    def n(predicate) -> int:
        return sum(1 for t in trials if predicate(t))

    return (
        f"{len(trials)} trials: {n(is_result)} trained to the end, "
        f"{n(lambda t: t.state == TrialState.PRUNED)} pruned, "
        f"{n(lambda t: bool(t.user_attrs.get('over_budget')))} over budget (never trained), "
        f"{n(lambda t: 'invalid' in t.user_attrs)} invalid, "
        f"{n(lambda t: 'duplicate_of' in t.user_attrs)} repeats, "
        f"{n(lambda t: t.state == TrialState.FAIL)} failed, "
        f"{n(lambda t: t.state == TrialState.RUNNING)} running; "
        f"{sum(row(t)['epochs'] for t in trials)} epochs trained in all"
    )


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best result: highest validation accuracy (on the Pareto front for two objectives)."""
    results = ranked(study.get_trials(deepcopy=False))
    return results[0] if results else None


def export_best(trial: FrozenTrial, run_dir: Path) -> None:
    """`best.yaml` and `best/` (a copy of the trial's run directory), each replaced atomically."""
    (run_dir / "best.yaml.tmp").write_text(trial.user_attrs["spec"])
    os.replace(run_dir / "best.yaml.tmp", run_dir / "best.yaml")
    source = Path(trial.user_attrs.get("run_dir", ""))
    if not (source / "metrics.json").is_file():
        return  # trained by a worker on another machine: its weights live there
    staging = run_dir / "best.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    old = run_dir / "best.old"
    if (run_dir / "best").exists():
        os.replace(run_dir / "best", old)
    os.replace(staging, run_dir / "best")
    shutil.rmtree(old, ignore_errors=True)
