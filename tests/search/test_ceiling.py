"""`--trials` as a ceiling: what counts, the refusal to start one more, and retries run at the ceiling."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from sandbox.errors import SandboxError
from sandbox.search.ceiling import DRAWS_PER_TRIAL, CeilingReached, DrawsExhausted, counted, finished
from sandbox.search.storage import open_study, retry_callback
from tests.search.test_objective import make_run


def objective(trial: optuna.Trial) -> float:
    return float(trial.suggest_int("stem.out", 4, 16, step=4))


def test_a_retried_failure_counts_once_as_its_retry(tmp_path: Path) -> None:
    study = open_study(make_run(tmp_path))
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.5))
    study.add_trial(create_trial(state=TrialState.FAIL))
    retry_callback()(study, study.trials[1])  # as Optuna's heartbeat or a rerun after a crash does
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING]
    assert [t.number for t in counted(trials)] == [0, 2]
    assert [t.number for t in finished(trials)] == [0]


def test_no_trial_starts_past_the_ceiling(tmp_path: Path) -> None:
    study = open_study(make_run(tmp_path), ceiling=3)
    with pytest.raises(CeilingReached):
        study.optimize(objective)
    assert len(study.trials) == 3
    with pytest.raises(CeilingReached):  # a rerun, or another process joining, starts none
        open_study(make_run(tmp_path), ceiling=3).ask()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask() outside optimize, as another process's loop
def test_a_running_trial_takes_its_place(tmp_path: Path) -> None:
    # another process's trial, still running: MaxTrialsCallback counted finished trials only
    study = open_study(make_run(tmp_path), ceiling=2)
    study.ask()
    other = open_study(make_run(tmp_path), ceiling=2)
    other.ask()
    with pytest.raises(CeilingReached):
        other.ask()
    assert [t.state for t in other.trials] == [TrialState.RUNNING, TrialState.RUNNING]


def test_a_waiting_retry_runs_at_the_ceiling(tmp_path: Path) -> None:
    study = open_study(make_run(tmp_path), ceiling=2)
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.5))
    study.add_trial(create_trial(state=TrialState.FAIL, params={"stem.out": 8}, distributions=_dist()))
    retry_callback()(study, study.trials[1])
    with pytest.raises(CeilingReached):
        study.optimize(objective)
    retry = study.trials[2]
    assert retry.state == TrialState.COMPLETE and retry.params == {"stem.out": 8}  # was left WAITING
    assert len(study.trials) == 3


def _dist() -> dict[str, optuna.distributions.BaseDistribution]:
    return {"stem.out": optuna.distributions.IntDistribution(4, 16, step=4)}


def test_without_a_ceiling_ask_is_optunas(tmp_path: Path) -> None:
    study = open_study(make_run(tmp_path))  # as the benches use it
    study.optimize(objective, n_trials=5)
    assert len(study.trials) == 5


def test_free_draws_take_no_place_and_trials_counts_trained_candidates(tmp_path: Path) -> None:
    study = open_study(make_run(tmp_path), ceiling=2)

    def every_other_outside_the_band(trial: optuna.Trial) -> float:
        if trial.number % 2 == 0:
            trial.set_user_attr("under_floor" if trial.number % 4 else "over_budget", True)
            return 0.0
        return objective(trial)

    with pytest.raises(CeilingReached):
        study.optimize(every_other_outside_the_band)
    assert len(study.trials) == 4  # two trained, two drawn outside the band for free
    assert [t.number for t in counted(study.trials)] == [1, 3]


def test_a_band_that_holds_nothing_ends_after_a_capped_number_of_draws(tmp_path: Path) -> None:
    study = open_study(make_run(tmp_path), ceiling=2)

    def always_over(trial: optuna.Trial) -> float:
        trial.set_user_attr("over_budget", True)
        return 0.0

    with pytest.raises(DrawsExhausted, match=r"stopped after 100 draws with 0 of 2 candidates trained"):
        study.optimize(always_over)
    assert len(study.trials) == DRAWS_PER_TRIAL * 2


def test_a_directory_in_place_of_the_lock_file_is_one_line(tmp_path: Path) -> None:
    study = open_study(make_run(tmp_path, trials=2), ceiling=2)
    (tmp_path / "study.db.lock").mkdir()  # was an IsADirectoryError traceback
    with pytest.raises(SandboxError, match=r"^cannot open the lock file .*study\.db\.lock: Is a directory "):
        study.ask()
