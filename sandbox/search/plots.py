"""The report's own matplotlib figures, drawn from the study's trials under their real numbers.

Each trial is reduced to a `Point` first, so what a figure shows can be checked without pixels:
a trained trial at its final validation accuracy, a pruned one at the accuracy of the last epoch
it reached, and a never-trained one (over budget, under the floor, invalid) in grey,
never at its stand-in value. Accuracies are drawn in percent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # files only; no display needed

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402

from sandbox.search.record import FLOPS, INVALID, OVER_BUDGET, UNDER_FLOOR
from sandbox.search.results import is_result, row  # noqa: E402

COMPLETE, PRUNED = "trained to the end", "pruned"
NEVER_TRAINED = ("over budget", "under floor", "invalid")
COLOURS = {COMPLETE: "tab:blue", PRUNED: "tab:orange"}
GREY = "#9e9e9e"
SIZE = (9, 6)


@dataclass(frozen=True)
class Point:
    """One trial as the figures show it."""

    number: int
    outcome: str  # COMPLETE, PRUNED or one of NEVER_TRAINED
    mflops: float | None
    val: float | None  # final, or at the last epoch a pruned trial reached; None if never trained
    epochs: int  # epochs this trial trained (0 for a repeat or a never-trained one)
    curve: tuple[tuple[int, float], ...]  # (step, validation accuracy) as reported


@dataclass(frozen=True)
class Reference:
    """The reference network as `sandbox.search.reference` measured it: mean and range over seeds."""

    name: str
    mflops: float
    val: tuple[float, ...]


def outcome(trial: FrozenTrial) -> str | None:
    """How the figures show a trial; None for one they leave out (failed, running, a repeat)."""
    attrs = trial.user_attrs
    if attrs.get(OVER_BUDGET):
        return "over budget"
    if attrs.get(UNDER_FLOOR):
        return "under floor"
    if INVALID in attrs:
        return "invalid"
    if is_result(trial):
        return COMPLETE
    if trial.state == TrialState.PRUNED and trial.intermediate_values:
        return PRUNED
    return None


def points(trials: Sequence[FrozenTrial]) -> list[Point]:
    """The trials the figures show, by number."""
    shown = []
    for trial in sorted(trials, key=lambda t: t.number):
        kind = outcome(trial)
        if kind is None:
            continue
        flops = trial.user_attrs.get(FLOPS)
        r = row(trial)
        shown.append(
            Point(
                number=trial.number,
                outcome=kind,
                mflops=flops / 1e6 if isinstance(flops, (int, float)) else None,
                val=None if kind in NEVER_TRAINED else r["val_accuracy"],
                epochs=int(r["epochs"] or 0),
                curve=tuple(sorted(trial.intermediate_values.items())),
            )
        )
    return shown


def epochs_spent(trials: Sequence[FrozenTrial]) -> list[tuple[int, int]]:
    """(trial number, epochs trained by it and every trial before it), in trial order."""
    total, spent = 0, []
    for trial in sorted(trials, key=lambda t: t.number):
        total += int(row(trial)["epochs"] or 0)
        spent.append((trial.number, total))
    return spent


def accuracy_vs_flops(
    shown: Sequence[Point], front: Sequence[int], budget_mflops: float | None, reference: Reference | None
) -> Figure:
    """Validation accuracy against MFLOPs: trained and pruned trials, the Pareto front of the trained
    ones, never-trained candidates in grey along the bottom, the budget and the reference network."""
    figure, ax = plt.subplots(figsize=SIZE)
    for kind, marker in ((COMPLETE, "o"), (PRUNED, "v")):
        mine = [p for p in shown if p.outcome == kind and p.mflops is not None]
        if mine:
            filled = kind == COMPLETE
            ax.scatter(
                *_xy(mine),
                marker=marker,
                s=40,
                facecolors=COLOURS[kind] if filled else "none",
                edgecolors=COLOURS[kind],
                label=f"{kind} ({len(mine)})" if filled else f"{kind}, at the last epoch reached ({len(mine)})",
                zorder=3,
            )
    for p in shown:
        if p.outcome == COMPLETE and p.mflops is not None:
            ax.annotate(f"#{p.number}", (p.mflops, p.val or 0), xytext=(4, 4), textcoords="offset points", fontsize=8)
    by_number = {p.number: p for p in shown}
    edge = sorted((by_number[n] for n in front if n in by_number), key=lambda p: p.mflops or 0)
    if edge:
        ax.plot(*_xy(edge), drawstyle="steps-post", color=COLOURS[COMPLETE], alpha=0.5, label="Pareto front")
    _never_trained(ax, shown)
    if budget_mflops is not None:
        ax.axvline(budget_mflops, color="tab:red", linestyle="--", label=f"budget {budget_mflops:.2f} MFLOPs")
    if reference is not None:
        mean = sum(reference.val) / len(reference.val)
        seeds = f"mean of {len(reference.val)} seeds" if len(reference.val) > 1 else "1 seed"
        ax.errorbar(
            [reference.mflops],
            [mean],
            yerr=[[mean - min(reference.val)], [max(reference.val) - mean]],
            marker="*",
            markersize=14,
            color="tab:green",
            linestyle="none",
            label=f"{reference.name} network ({seeds})",
            zorder=4,
        )
    ax.set_xlabel("MFLOPs per image")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Candidates: accuracy against FLOPs")
    ax.legend(loc="best", fontsize=8)
    return _finish(figure)


def _xy(shown: Sequence[Point]) -> tuple[list[float], list[float]]:
    """MFLOPs and accuracies of points that have both."""
    placed = [p for p in shown if p.mflops is not None and p.val is not None]
    return [p.mflops or 0.0 for p in placed], [p.val or 0.0 for p in placed]


def _never_trained(ax: plt.Axes, shown: Sequence[Point]) -> None:
    """Grey ticks along the bottom at their FLOPs (they have no accuracy); invalid ones, which have
    no FLOPs, only in the legend."""
    grey = [p for p in shown if p.outcome in NEVER_TRAINED]
    if not grey:
        return
    counts = ", ".join(f"{kind} {n}" for kind in NEVER_TRAINED if (n := sum(p.outcome == kind for p in grey)))
    placed = [p.mflops for p in grey if p.mflops is not None]
    bottom = blended_transform_factory(ax.transData, ax.transAxes)
    ax.plot(
        placed,
        [0.03] * len(placed),
        transform=bottom,
        marker="|",
        markersize=14,
        linestyle="none",
        color=GREY,
        label=f"never trained ({counts})",
    )


def best_so_far(shown: Sequence[Point], spent: Sequence[tuple[int, int]]) -> Figure:
    """The best validation accuracy found against the epochs spent so far, trials summed in order."""
    figure, ax = plt.subplots(figsize=SIZE)
    after = dict(spent)
    best: float | None = None
    xs: list[int] = []
    ys: list[float] = []
    for p in shown:
        if p.outcome != COMPLETE or p.val is None:
            continue
        ax.scatter([after[p.number]], [p.val], color=COLOURS[COMPLETE], alpha=0.35, s=20, zorder=2)
        if best is None or p.val > best:
            best = p.val
            xs.append(after[p.number])
            ys.append(best)
            ax.annotate(f"#{p.number}", (xs[-1], best), xytext=(4, -12), textcoords="offset points", fontsize=8)
    if xs:
        total = spent[-1][1] if spent else xs[-1]
        ax.plot([*xs, total], [*ys, ys[-1]], drawstyle="steps-post", color=COLOURS[COMPLETE], label="best so far")
        ax.scatter(xs, ys, color=COLOURS[COMPLETE], zorder=3, label="a new best (its trial)")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("epochs trained, summed over the trials in trial order")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Best so far against training spent")
    return _finish(figure)


def learning_curves(shown: Sequence[Point]) -> Figure:
    """Each trained trial's validation accuracy by epoch, coloured by its outcome; the best in bold."""
    figure, ax = plt.subplots(figsize=SIZE)
    complete = [p for p in shown if p.outcome == COMPLETE and p.val is not None]
    best = max(complete, key=lambda p: p.val or 0.0, default=None)
    handles = []
    for kind in (COMPLETE, PRUNED):
        mine = [p for p in shown if p.outcome == kind and p.curve]
        for p in mine:
            steps, values = zip(*p.curve, strict=True)
            ax.plot(steps, values, color=COLOURS[kind], alpha=0.5, linewidth=1, marker=".", markersize=3)
        if mine:
            handles.append(Line2D([], [], color=COLOURS[kind], label=f"{kind} ({len(mine)})"))
    if best is not None and best.curve:
        steps, values = zip(*best.curve, strict=True)
        ax.plot(steps, values, color="black", linewidth=2, label=f"best: trial #{best.number}")
        handles.append(ax.lines[-1])
    if handles:
        ax.legend(handles=handles, loc="lower right", fontsize=8)
    ax.set_xlabel("epoch (the step each trial reported)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Learning curves")
    return _finish(figure)


def by_choice(results: Sequence[FrozenTrial], paths: Sequence[str], names: dict[str, str], top: int = 3) -> Figure:
    """Validation accuracy against each searched choice, one small panel per choice in network order,
    four to a row: readable at any number of dimensions, where a parallel-coordinate plot's axes and
    labels crowd past ten. Every result is a grey dot; the best `top` are coloured and labelled."""
    if not results or not paths:
        raise ValueError("no trained candidate to draw")
    ranked_results = sorted(results, key=lambda t: -t.values[0])
    columns = min(4, len(paths))
    rows = -(-len(paths) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows + 0.6), squeeze=False,
                                sharey=True, layout="constrained")  # fmt: skip
    colours = plt.get_cmap("tab10")
    for ax, path in zip(axes.flat, paths, strict=False):
        values = [t.params[path] for t in ranked_results if path in t.params]
        categorical = any(isinstance(v, str) for v in values) or len(set(values)) <= 6
        order = sorted(set(values), key=_in_order) if categorical else None
        for rank, trial in reversed(list(enumerate(ranked_results))):
            if path not in trial.params:
                continue
            value = trial.params[path]
            x = order.index(value) if order is not None else value
            best = rank < top
            ax.scatter([x], [100 * trial.values[0]], s=36 if best else 14, zorder=3 if best else 2,
                       color=colours(rank) if best else GREY, alpha=1 if best else 0.6)  # fmt: skip
        if order is not None:
            ax.set_xticks(range(len(order)), [str(v) for v in order], fontsize=7, rotation=20)
            ax.set_xlim(-0.5, len(order) - 0.5)
        ax.set_title(names.get(path, path), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.yaxis.set_major_formatter(PercentFormatter(decimals=1))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(paths) :]:
        ax.set_visible(False)
    handles = [Line2D([], [], marker="o", linestyle="none", color=colours(i), label=f"#{t.number}")
               for i, t in enumerate(ranked_results[:top])]  # fmt: skip
    handles.append(Line2D([], [], marker="o", linestyle="none", color=GREY, label="the other results"))
    figure.legend(handles=handles, loc="outside upper center", ncols=len(handles), fontsize=8)
    figure.supylabel("validation accuracy", fontsize=9)
    return figure


def _in_order(value: object) -> tuple[bool, float, str]:
    """Numbers by value, then names by name."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (not number, float(value) if number else 0.0, str(value))  # type: ignore[arg-type]


def _finish(figure: Figure) -> Figure:
    for ax in figure.axes:
        if "accuracy" in ax.get_ylabel():  # drawn as fractions, read in percent
            ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=1))
    figure.tight_layout()
    return figure
