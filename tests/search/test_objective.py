"""The objective in-process, with a stand-in trainer: what it records, and what it reuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.search.spaces import tiny_space


def test_a_repeated_candidate_is_not_trained_again(tmp_path: Path) -> None:
    from sandbox.search.config import search_config
    from sandbox.search.objective import Objective
    from sandbox.search.results import ranked
    from sandbox.search.run import SearchRun
    from sandbox.search.storage import open_study

    space = tiny_space()
    run = SearchRun(space, tmp_path, "tiny", search_config(space["search"]), tmp_path, f"sqlite:///{tmp_path}/s.db")
    calls: list[int] = []

    def fake_train(spec, **_: Any) -> dict[str, float]:
        calls.append(1)
        return {"val_accuracy": 0.5, "test_accuracy": 0.4, "seconds": 1.0, "train_images_per_second": 1.0, "seed": 0}

    study = open_study(run)
    params = {
        "stem.out": 8,
        "stages[0].modules[0].branches[0].out": 4,
        "stages[0].modules[0].branches[1].type": "conv3x3",
    }
    study.enqueue_trial(params)
    study.enqueue_trial(params)
    study.optimize(Objective(run, "cpu", train=fake_train), n_trials=2)
    first, second = study.trials
    assert len(calls) == 1
    assert second.user_attrs["duplicate_of"] == first.number and second.values == first.values
    assert [t.number for t in ranked(study.trials)] == [first.number]  # listed once
