"""Random sampling inside the FLOP band: no trial for a draw outside it, the same draws for a seed."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState

import sandbox.search.band
from sandbox.search.band import InBandDraws, band_draws
from sandbox.search.ceiling import CeilingReached, DrawsExhausted, counted
from sandbox.search.objective import Objective
from sandbox.search.results import summary
from sandbox.search.storage import open_study
from tests.search.test_objective import make_run, stand_in


def test_a_random_search_makes_trials_of_candidates_inside_the_band_only(tmp_path: Path) -> None:
    run = make_run(tmp_path, sampler="random", budget="2M", floor="1M", trials=4)
    study, calls = open_study(run, ceiling=4), []
    with pytest.raises(CeilingReached):
        study.optimize(Objective(run, "cpu", train=stand_in(calls)), catch=(Exception,))
    trials = study.trials
    assert len(counted(trials)) == len(calls) == 4
    assert all(t.state == TrialState.COMPLETE and 1_000_000 <= t.user_attrs["flops"] <= 2_000_000 for t in trials)
    assert all("duplicate_of" in t.user_attrs for t in trials if t not in counted(trials))  # repeats in a tiny band
    drawn = sum(t.user_attrs["draws"] for t in trials)
    assert drawn > len(trials)  # draws outside the band made no trial
    assert summary(trials).endswith(
        f"; {drawn} random draws, {drawn - len(trials)} of them outside the FLOP band (never trials)"
    )


def test_a_seed_draws_the_same_candidate_for_a_trial_number(tmp_path: Path) -> None:
    run = make_run(tmp_path, sampler="random", budget="2M", floor="1M")
    draw, again = InBandDraws(run), InBandDraws(run)
    assert [draw(n) for n in range(3)] == [again(n) for n in (0, 1, 2)]
    assert draw(0) != draw(1)
    other_seed = make_run(tmp_path, sampler="random", budget="2M", floor="1M", seed=7)
    assert [InBandDraws(other_seed)(n) for n in range(3)] != [draw(n) for n in range(3)]


def test_a_band_that_random_draws_keep_missing_ends_the_search_without_a_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox.search.band, "BAND_DRAWS", 6)
    run = make_run(tmp_path, sampler="random", budget="2M", floor=1_999_999)  # a band nothing falls in
    study = open_study(run, ceiling=4)
    with pytest.raises(DrawsExhausted, match=r"^6 random candidates in a row fell outside the FLOP band \(2\.00 to"):
        study.optimize(Objective(run, "cpu", train=stand_in([])))
    assert study.trials == []


@pytest.mark.parametrize("config", [{"sampler": "tpe", "budget": "2M"}, {"sampler": "random", "budget": None}])
def test_model_based_samplers_and_searches_without_a_budget_draw_as_optuna_does(tmp_path: Path, config: dict) -> None:
    assert band_draws(make_run(tmp_path, **config)) is None
