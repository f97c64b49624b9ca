"""What a search prints while a trial trains: its epochs, and the time the search has left."""

from __future__ import annotations

import io
from pathlib import Path

import optuna
import pytest
from optuna.trial import create_trial

from sandbox.search.progress import TrialProgress, duration
from sandbox.search.storage import open_study
from tests.search.test_objective import make_run, run_trial


def test_durations_read_as_a_person_says_them() -> None:
    assert [duration(s) for s in (45, 720, 8280)] == ["45 s", "12 min", "2.3 h"]


def study_with_one_trained_trial(seconds: float) -> optuna.Study:
    """A study holding one trial trained in `seconds`, and one running (the trial being watched)."""
    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(value=0.8, user_attrs={"seconds": seconds}))
    study.ask()
    return study


def test_lines_every_quarter_with_the_figures_and_the_time_left() -> None:
    trials = study_with_one_trained_trial(100.0).get_trials()
    out = io.StringIO()
    progress = TrialProgress(trials, 1, 8, 4, bar=False, out=out)
    record = {"loss": 0.5, "train_accuracy": 0.8125, "val_loss": 0.625, "val_accuracy": 0.75, "seconds": 10.0}
    for epoch in range(8):
        progress.epoch(epoch, record)
    progress.close()
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == [f"trial 1 epoch {e}/8" for e in (2, 4, 6)]  # the 8th: the trial's
    # after 2 of 8 epochs at 10 s: 60 s of this trial, then 2 unstarted trials at the trained one's 100 s
    assert lines[0] == "trial 1 epoch 2/8: train loss 0.5000 81.25%, val loss 0.6250 75.00% | search about 4 min left"


def test_before_any_trial_finished_the_running_one_is_the_measure() -> None:
    study = optuna.create_study()
    study.ask()
    progress = TrialProgress(study.get_trials(), 0, 10, 3, bar=False, out=io.StringIO())
    progress.epoch(0, {"seconds": 6.0})
    assert progress.left(1) == pytest.approx(9 * 6 + 2 * 60)  # 2 unstarted trials of 10 epochs at 6 s


def test_the_objective_prints_each_trials_epochs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path, epochs=4)
    run_trial(open_study(run), run, [])
    err = capsys.readouterr().err
    assert "trial 0 epoch 1/4: val 50.00% | search about" in err and "epoch 4/4" not in err


def test_on_a_terminal_a_bar_counts_the_epochs() -> None:
    out = io.StringIO()
    progress = TrialProgress(study_with_one_trained_trial(100.0).get_trials(), 1, 8, 4, bar=True, out=out)
    progress.epoch(0, {"val_accuracy": 0.5, "seconds": 1.0})
    assert progress.bar is not None and progress.bar.n == 1
    progress.close()
    assert "trial 1" in out.getvalue() and "epoch 1/8" not in out.getvalue()  # a bar, no line
