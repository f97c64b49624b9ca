"""The live line a search prints after each trial, in percent, and the command that resumes a search."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial

from sandbox.search.ceiling import finished
from sandbox.search.results import is_result, note, ranked


class TrialPrinter:
    """An Optuna callback: number, FLOPs, accuracy, best so far, and pruned/over-budget notes."""

    def __init__(self, run, worker: int | None) -> None:
        self.budget = run.config.budget
        self.total = run.config.trials
        self.prefix = f"[worker {worker}] " if worker is not None else ""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trials = study.get_trials(deepcopy=False)
        flops = trial.user_attrs.get("flops")
        size = f"{flops / 1e6:8.2f} MFLOPs" if flops is not None else f"{'?':>8} MFLOPs"
        if is_result(trial):
            outcome = f"val {trial.values[0]:.2%}"
        elif trial.user_attrs.get("over_budget"):
            outcome = f"over budget ({self.budget / 1e6:.1f}M), not trained"
        else:
            outcome = note(trial) or trial.state.name.lower()
        best = ranked(trials)
        best_text = f"best {best[0].values[0]:.2%} (#{best[0].number})" if best else "best -"
        done = len(finished(trials))  # as `--trials` counts them: a retried failure once
        line = f"{self.prefix}trial {trial.number:>3} [{done}/{self.total}] {size} | {outcome} | {best_text}"
        print(line, flush=True)


def resume_command(argv: Sequence[str]) -> str:
    """The command that continues an interrupted search: the same one (a rerun resumes its study)."""
    return shlex.join(["python", "-m", "sandbox", *argv])
