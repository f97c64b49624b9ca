"""What a search prints as it goes: each trial's epochs (`TrialProgress`), a line after each trial
(`TrialPrinter`), in percent, with the time the search has left; and the command that resumes it.

The time left is an estimate made of this trial's epochs so far and the trials trained before it:
this trial's remaining epochs at its mean epoch time, plus the places `--trials` has not yet
started, each at the mean time of the trials trained to the end (this trial's projected time until
one has), shared by the trials running at once. Pruned trials end early and candidates differ in
size, so it is a guide, not a promise."""

from __future__ import annotations

import shlex
import statistics
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from sandbox.search.ceiling import counted, finished
from sandbox.search.record import FLOPS, OVER_BUDGET, SECONDS
from sandbox.search.results import is_result, note, ranked

LINES_PER_TRIAL = 4  # without a terminal: a line after every quarter of a trial's epochs


def duration(seconds: float) -> str:
    """A time span as a person reads it: 45 s, 12 min, 2.3 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class TrialProgress:
    """One trial's epochs as they end: a bar on a terminal (one worker only: bars of several processes
    would overwrite each other), else a line every `epochs / LINES_PER_TRIAL` epochs; each with the
    trial's figures and the search's time left."""

    def __init__(
        self, trials: Sequence[FrozenTrial], number: int, epochs: int, total: int,
        *, bar: bool, out: TextIO | None = None,
    ) -> None:  # fmt: skip
        """`trials`: the study's trials when this one starts (read once, not once an epoch); `total`:
        `--trials`; `out`: where to write (stderr, as it is when the trial starts)."""
        self.number, self.epochs, self.out = number, epochs, out or sys.stderr
        self.every = max(1, epochs // LINES_PER_TRIAL)
        mine = counted(trials)
        self.unstarted = max(0, total - len(mine))
        self.running = max(1, sum(trial.state == TrialState.RUNNING for trial in mine))
        spent = [float(t.user_attrs[SECONDS]) for t in trials if is_result(t) and SECONDS in t.user_attrs]
        self.per_trial = statistics.fmean(spent) if spent else None
        self.seconds = 0.0
        self.bar = tqdm(total=epochs, desc=f"trial {number}", unit="epoch", leave=False, file=self.out) if bar else None

    def left(self, done: int) -> float:
        """Seconds the search has left after `done` epochs of this trial."""
        per_epoch = self.seconds / done
        per_trial = self.per_trial if self.per_trial is not None else per_epoch * self.epochs
        return per_epoch * (self.epochs - done) + self.unstarted * per_trial / self.running

    def epoch(self, index: int, record: Mapping[str, Any]) -> None:
        done = index + 1
        self.seconds += float(record.get("seconds", 0.0))
        figures = _figures(record)
        left = f"search about {duration(self.left(done))} left"
        if self.bar is not None:
            self.bar.set_postfix_str(f"{figures} | {left}", refresh=False)
            self.bar.update()
        elif done % self.every == 0 and done < self.epochs:  # the last epoch's line is the trial's own
            print(f"trial {self.number} epoch {done}/{self.epochs}: {figures} | {left}", file=self.out, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _figures(record: Mapping[str, Any]) -> str:
    """An epoch's figures in words, those the record has (a stand-in trainer's may hold fewer)."""
    parts = []
    if "loss" in record:
        accuracy = f" {record['train_accuracy']:.2%}" if "train_accuracy" in record else ""
        parts.append(f"train loss {record['loss']:.4f}{accuracy}")
    if "val_accuracy" in record:
        loss = f"loss {record['val_loss']:.4f} " if "val_loss" in record else ""
        parts.append(f"val {loss}{record['val_accuracy']:.2%}")
    return ", ".join(parts)


class TrialPrinter:
    """An Optuna callback: number, FLOPs, accuracy, best so far, and pruned/over-budget notes."""

    def __init__(self, run, worker: int | None) -> None:
        self.budget = run.config.budget
        self.total = run.config.trials
        self.prefix = f"[worker {worker}] " if worker is not None else ""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trials = study.get_trials(deepcopy=False)
        flops = trial.user_attrs.get(FLOPS)
        size = f"{flops / 1e6:8.2f} MFLOPs" if flops is not None else f"{'?':>8} MFLOPs"
        if is_result(trial):
            outcome = f"val {trial.values[0]:.2%}"
        elif trial.user_attrs.get(OVER_BUDGET):
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
