"""What a search leaves for people: leaderboard, Pareto front, best spec and weights, summary.

Infeasible trials (over budget, under the floor or invalid) carry a stand-in value for the samplers'
sake; every function here reads `is_result` first, so no stand-in is ever shown as a result.

The leaderboard marks the results statistically tied with the best: each trained trial keeps which
validation images it got right (`correct_val`), so two of them compare paired, by McNemar's exact
test at `sandbox.paired.LEVEL` (`versus_best`).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sandbox.paired import LEVEL, Paired, compare, unpack
from sandbox.runs import atomic_write, replace_directory
from sandbox.search.record import (
    CORRECT_VAL,
    DRAWS,
    DUPLICATE_OF,
    EPOCHS_TRAINED,
    ERROR,
    FLOPS,
    INVALID,
    NOT_TRAINED,
    OVER_BUDGET,
    PARAMS,
    RUN_DIR,
    SECONDS,
    SPEC,
    TEST_ACCURACY,
    UNDER_FLOOR,
)

COLUMNS = (
    "trial", "state", "val_accuracy", "test_accuracy", "vs_best", "flops", "params", "epochs", "seconds", "note",
)  # fmt: skip
TOP_LEVEL = ("input", "normalize", "defaults", "stem", "stages", "head", "aux", "train", "data")  # network order


def is_result(trial: FrozenTrial) -> bool:
    """A trained, complete, feasible trial: its value is a real validation accuracy."""
    return (
        trial.state == TrialState.COMPLETE
        and not any(trial.user_attrs.get(attr) for attr in NOT_TRAINED)
        and INVALID not in trial.user_attrs
        and DUPLICATE_OF not in trial.user_attrs  # shown once, under the trial that trained it
    )


def note(trial: FrozenTrial) -> str:
    attrs = trial.user_attrs
    if attrs.get(OVER_BUDGET):
        return "over budget"
    if attrs.get(UNDER_FLOOR):
        return "under the FLOP floor"
    if INVALID in attrs:
        return f"invalid: {attrs[INVALID]}"
    if DUPLICATE_OF in attrs:
        return f"same candidate as trial {attrs[DUPLICATE_OF]}, not trained again"
    if trial.state == TrialState.PRUNED:
        return f"pruned after epoch {attrs.get(EPOCHS_TRAINED, '?')}"
    if trial.state == TrialState.FAIL:
        return f"failed: {attrs.get(ERROR, 'interrupted')}"
    return trial.state.name.lower() if trial.state != TrialState.COMPLETE else ""


def ranked(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Result trials, best validation accuracy first (fewer FLOPs break ties)."""
    return sorted(filter(is_result, trials), key=lambda t: (-t.values[0], t.user_attrs.get(FLOPS, 0)))


def pareto_front(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Result trials no other result beats on both accuracy (higher) and FLOPs (lower)."""
    results = ranked(trials)
    front: list[FrozenTrial] = []
    for trial in results:  # sorted by accuracy: keep those cheaper than every better one
        if all(trial.user_attrs[FLOPS] < kept.user_attrs[FLOPS] for kept in front):
            front.append(trial)
    return front


def choices(trials: Sequence[FrozenTrial]) -> list[str]:
    """Every searched parameter's YAML path, in network order (stem, stages by index, head, recipe)."""
    return sorted({name for trial in trials for name in trial.params}, key=_network_position)


def _network_position(path: str) -> tuple[Any, ...]:
    """A sort key: the top-level key's place in a spec, then each index as a number, each key by name."""
    parts = re.findall(r"[^.\[\]]+", path)
    top = TOP_LEVEL.index(parts[0]) if parts and parts[0] in TOP_LEVEL else len(TOP_LEVEL)
    return (top, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts[1:]))


def versus_best(trials: Sequence[FrozenTrial]) -> dict[int, Paired]:
    """Each result that kept its per-image record, against the best one, on validation (paired)."""
    results = [t for t in ranked(trials) if CORRECT_VAL in t.user_attrs]
    if not results:
        return {}
    best = unpack(results[0].user_attrs[CORRECT_VAL])
    compared = {}
    for trial in results:
        mine = unpack(trial.user_attrs[CORRECT_VAL])
        if len(mine) == len(best):  # the same split; a study never mixes splits, but be safe
            compared[trial.number] = compare(mine, best)
    return compared


def tie_text(trial: FrozenTrial, best: FrozenTrial | None, paired: Paired | None) -> str:
    """How a result stands against the best on validation: 'best', 'tied (p 0.43)', 'worse (p 0.012)'."""
    if best is not None and trial.number == best.number:
        return "best"
    if paired is None:
        return ""
    return f"{'tied' if paired.tied else 'worse'} (p {paired.p_value:.2g})"


def row(trial: FrozenTrial, vs_best: str = "") -> dict[str, Any]:
    """A trial as the leaderboard lists it: `seconds` is the time it actually trained (0 for a repeat
    and a draw never trained), `vs_best` its paired test against the best (`tie_text`)."""
    attrs = trial.user_attrs
    trained = trial.state in (TrialState.COMPLETE, TrialState.PRUNED) and not any(attrs.get(a) for a in NOT_TRAINED)
    intermediate = trial.intermediate_values
    val = trial.values[0] if is_result(trial) else (intermediate[max(intermediate)] if intermediate else None)
    return {
        "trial": trial.number,
        "state": trial.state.name,
        "val_accuracy": val,
        "test_accuracy": attrs.get(TEST_ACCURACY) if is_result(trial) else None,
        "vs_best": vs_best,
        "flops": attrs.get(FLOPS),
        "params": attrs.get(PARAMS),
        "epochs": attrs.get(EPOCHS_TRAINED, 0) if trained and DUPLICATE_OF not in attrs else 0,
        "seconds": seconds_trained(trial),
        "note": note(trial),
    }


def seconds_trained(trial: FrozenTrial) -> float | None:
    """What the trial spent training: 0 for a repeat and a draw never trained, the time the trial ran
    for a pruned or failed one (which recorded none)."""
    attrs = trial.user_attrs
    if DUPLICATE_OF in attrs or INVALID in attrs or any(attrs.get(a) for a in NOT_TRAINED):
        return 0.0
    if SECONDS in attrs:
        return float(attrs[SECONDS])
    return trial.duration.total_seconds() if trial.duration else None


def rows(trials: Sequence[FrozenTrial]) -> list[tuple[FrozenTrial, dict[str, Any]]]:
    """The leaderboard: results by rank, then the rest by number; each row with its choices by YAML path."""
    results = ranked(trials)
    rest = sorted((t for t in trials if not is_result(t)), key=lambda t: t.number)
    paired = versus_best(trials)
    best = results[0] if results else None
    paths = choices(trials)
    listed = []
    for trial in [*results, *rest]:
        columns = row(trial, tie_text(trial, best, paired.get(trial.number)))
        listed.append((trial, {**columns, **{path: trial.params.get(path) for path in paths}}))
    return listed


def write_leaderboard(trials: Sequence[FrozenTrial], path: Path) -> None:
    """All trials as CSV, results first by rank, then the rest by number, a column per searched choice
    (its YAML path) in network order (atomic write)."""

    def write(temporary: Path) -> None:
        with temporary.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=[*COLUMNS, *choices(trials)])
            writer.writeheader()
            writer.writerows(r for _, r in rows(trials))

    atomic_write(path, write)


TIE_RULE = (
    f"tied: not different from the best at the {LEVEL:.0%} level by McNemar's exact test, paired on the "
    "validation images each got right"
)


def format_leaderboard(trials: Sequence[FrozenTrial], limit: int = 10) -> str:
    lines = [f"{'trial':>5} {'val acc':>8} {'test acc':>8} {'MFLOPs':>9} {'params':>10} {'epochs':>6}  vs best (val)"]
    for _, r in rows(ranked(trials))[:limit]:
        lines.append(
            f"{r['trial']:>5} {r['val_accuracy']:>8.2%} {r['test_accuracy'] or 0:>8.2%} "
            f"{r['flops'] / 1e6:>9.2f} {r['params']:>10,} {r['epochs']:>6}  {r['vs_best']}"
        )
    if len(lines) == 1:
        return "(no trained candidate yet)"
    return "\n".join([*lines, TIE_RULE] if any("tied" in line for line in lines[1:]) else lines)


def summary(trials: Sequence[FrozenTrial]) -> str:
    def n(predicate) -> int:
        return sum(1 for t in trials if predicate(t))

    return (
        f"{len(trials)} trials: {n(is_result)} trained to the end, "
        f"{n(lambda t: t.state == TrialState.PRUNED)} pruned, "
        f"{n(lambda t: bool(t.user_attrs.get(OVER_BUDGET)))} over budget (never trained), "
        f"{n(lambda t: bool(t.user_attrs.get(UNDER_FLOOR)))} under the floor (never trained), "
        f"{n(lambda t: INVALID in t.user_attrs)} invalid, "
        f"{n(lambda t: DUPLICATE_OF in t.user_attrs)} repeats, "
        f"{n(lambda t: t.state == TrialState.FAIL)} failed, "
        f"{n(lambda t: t.state == TrialState.RUNNING)} running; "
        f"{sum(row(t)['epochs'] for t in trials)} epochs trained in all{draws_text(trials)}"
    )


def draws_text(trials: Sequence[FrozenTrial]) -> str:
    """What random sampling drew to find its trials in the band (`sandbox.search.band`); "" for other samplers."""
    drawn = [t.user_attrs[DRAWS] for t in trials if DRAWS in t.user_attrs]
    if not drawn:
        return ""
    return f"; {sum(drawn):,} random draws, {sum(drawn) - len(drawn):,} of them outside the FLOP band (never trials)"


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best result: highest validation accuracy (on the Pareto front for two objectives)."""
    results = ranked(study.get_trials(deepcopy=False))
    return results[0] if results else None


def export_best(trial: FrozenTrial, run_dir: Path) -> None:
    """`best.yaml` and `best/` (a copy of the trial's run directory), each replaced atomically."""
    atomic_write(run_dir / "best.yaml", lambda temporary: temporary.write_text(trial.user_attrs[SPEC]))
    source = Path(trial.user_attrs.get(RUN_DIR, ""))
    if (source / "metrics.json").is_file():  # else trained by a worker on another machine: its weights live there
        replace_directory(source, run_dir / "best")
