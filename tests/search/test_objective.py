"""The objective in-process, with a stand-in trainer: what it records, and what it reuses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

import sandbox.search.objective
from sandbox.search.objective import Objective
from sandbox.search.results import ranked
from sandbox.search.run import SearchRun
from sandbox.search.storage import open_study
from sandbox.spec.search import search_config
from tests.search.spaces import tiny_space

PARAMS = {"stem.out": 8, "stages[0].modules[0].branches[0].out": 4, "stages[0].modules[0].branches[1].type": "conv3x3"}


def make_run(root: Path, space: dict[str, Any] | None = None, **config: Any) -> SearchRun:
    """A search of `space` (default the tiny one) in `root`, with `config` over its `search:` section."""
    space = space or tiny_space()
    settings = search_config(space["search"]).with_overrides(**config)
    return SearchRun(space, root, "tiny", settings, root, f"sqlite:///{root}/study.db")


def stand_in(calls: list[int]) -> Callable[..., dict[str, float]]:
    """A trainer that trains nothing: it reports each epoch, as `train_run` does, and counts its calls."""

    def train(spec: Any, *, epochs: int | None, seed: int, on_epoch: Any, **_: Any) -> dict[str, float]:
        calls.append(1)
        for epoch in range(epochs or spec.train.epochs):
            on_epoch(epoch, {"val_accuracy": 0.5})
        return {"val_accuracy": 0.5, "test_accuracy": 0.4, "seconds": 1.0, "train_images_per_second": 1.0, "seed": seed}

    return train


def run_trial(study: optuna.Study, run: SearchRun, calls: list[int]) -> None:
    study.enqueue_trial(PARAMS)
    study.optimize(Objective(run, "cpu", train=stand_in(calls)), n_trials=1, catch=(Exception,))


def test_a_repeated_candidate_is_not_trained_again(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    study, calls = open_study(run), []
    run_trial(study, run, calls)
    run_trial(study, run, calls)
    first, second = study.trials
    assert len(calls) == 1
    assert second.user_attrs["duplicate_of"] == first.number and second.values == first.values
    assert [t.number for t in ranked(study.trials)] == [first.number]  # listed once


def changed_network() -> dict[str, Any]:
    space = tiny_space()
    space["stages"][1]["modules"][0]["branches"][0]["out"] = 32  # a fixed width, not a search dimension
    return space


def changed_recipe() -> dict[str, Any]:
    space = tiny_space()
    space["train"]["lr"] = 0.02
    return space


@pytest.mark.parametrize(
    "other",
    [
        lambda root: make_run(root, changed_network()),
        lambda root: make_run(root, changed_recipe()),
        lambda root: make_run(root, epochs=2),
        lambda root: make_run(root, seed=3),
    ],
    ids=["network", "train", "epochs", "seed"],
)
def test_a_repeat_trained_another_way_is_trained_again(tmp_path: Path, other: Callable[[Path], SearchRun]) -> None:
    # same parameters, but the earlier result answers another question; `open_study` refuses such a
    # rerun, and the objective does not rely on that
    run, calls = make_run(tmp_path), []
    study = open_study(run)
    run_trial(study, run, calls)
    run_trial(study, other(tmp_path), calls)
    assert len(calls) == 2
    assert not any("duplicate_of" in trial.user_attrs for trial in study.trials)


def test_a_failure_before_training_records_its_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_count(spec: Any) -> Any:
        raise RuntimeError("the FLOP counter broke")

    monkeypatch.setattr(sandbox.search.objective, "count", broken_count)
    run = make_run(tmp_path)
    study = open_study(run)
    run_trial(study, run, [])
    (trial,) = study.trials
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["error"] == "RuntimeError: the FLOP counter broke"  # was: "interrupted"


def scored_by_epochs(calls: list[int | None]) -> Callable[..., dict[str, float]]:
    """A trainer whose final accuracy is 0.5 + epochs/100 + the stem's width/1000, and that records
    the epochs of each run it is asked for (`on_epoch` is None for the rungs' short schedules)."""

    def train(spec: Any, *, epochs: int | None, seed: int, on_epoch: Any = None, **_: Any) -> dict[str, float]:
        calls.append(epochs)
        for epoch in range(epochs or 0):
            if on_epoch is not None:
                on_epoch(epoch, {"val_accuracy": 0.0})
        accuracy = 0.5 + (epochs or 0) / 100 + spec.stem.params["out"] / 1000
        return {
            "val_accuracy": accuracy,
            "test_accuracy": 0.4,
            "seconds": 1.0,
            "train_images_per_second": 1.0,
            "seed": seed,
        }

    return train


def test_complete_rung_schedules_train_each_rung_from_scratch_and_count_every_epoch(tmp_path: Path) -> None:
    run = make_run(tmp_path, pruner="asha", first_rung=1, reduction_factor=2, rung_schedule="complete", epochs=4)
    study, calls = open_study(run), []
    for width in (16, 4):  # the second is worse at every rung: pruned at its first
        study.enqueue_trial({**PARAMS, "stem.out": width})
        study.optimize(Objective(run, "cpu", train=scored_by_epochs(calls)), n_trials=1)
    best, worse = study.trials
    assert calls == [1, 2, 4, 1]  # rungs 1 and 2, the full 4 epochs; then rung 1 only
    assert best.state == TrialState.COMPLETE and best.user_attrs["epochs_trained"] == 7
    assert best.intermediate_values == {1: 0.526, 2: 0.536, 4: 0.556}
    assert worse.state == TrialState.PRUNED and worse.user_attrs["epochs_trained"] == 1


def test_candidates_outside_the_band_are_never_trained_and_take_no_place(tmp_path: Path) -> None:
    from sandbox.search.ceiling import CeilingReached, counted

    run = make_run(tmp_path, budget="2M", floor="1M", trials=3)
    study, calls = open_study(run, ceiling=3), []
    with pytest.raises(CeilingReached):
        study.optimize(Objective(run, "cpu", train=stand_in(calls)), catch=(Exception,))
    trained = counted(study.trials)
    assert len(trained) == len(calls) == 3
    assert all(1_000_000 <= t.user_attrs["flops"] <= 2_000_000 for t in trained)
    under = [t for t in study.trials if t.user_attrs.get("under_floor")]
    assert under and all(t.user_attrs["flops"] < 1_000_000 for t in under)
    assert all(t.system_attrs["constraints"][0] > 0 for t in under)  # infeasible to every sampler
