"""A trial draws by the seed and its number: processes on one study differ, worker counts do not matter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from sandbox.search.config import make_sampler
from sandbox.search.objective import Objective
from sandbox.search.storage import open_study
from tests.search.test_objective import make_run, stand_in


def candidates(study: optuna.Study, run: Any, trials: int) -> list[dict[str, Any]]:
    """The parameters of the next `trials` trials this process draws."""
    drawn = []
    for _ in range(trials):
        study.optimize(Objective(run, "cpu", train=stand_in([])), n_trials=1)
        drawn.append(study.trials[-1].params)
    return drawn


@pytest.mark.parametrize("sampler", ["tpe", "random", "nsga2", "gp"])
def test_a_one_process_run_is_reproducible(tmp_path: Path, sampler: str) -> None:
    runs = [make_run(tmp_path / name, sampler=sampler, seed=5) for name in ("a", "b")]
    assert candidates(open_study(runs[0]), runs[0], 3) == candidates(open_study(runs[1]), runs[1], 3)


def test_processes_joining_one_study_draw_different_candidates(tmp_path: Path) -> None:
    # two processes with the same --seed, taking turns: each once drew what the other drew
    run = make_run(tmp_path, sampler="random", seed=5)
    one, two = open_study(run), open_study(run)
    drawn = [candidates(study, run, 1)[0] for _ in range(3) for study in (one, two)]
    assert drawn[0::2] != drawn[1::2]


def test_a_fresh_study_draws_what_the_plain_seed_draws(tmp_path: Path) -> None:
    run = make_run(tmp_path, sampler="random", seed=5)
    plain = optuna.create_study(sampler=make_sampler(run.config, 5), directions=run.config.directions)
    plain.optimize(Objective(run, "cpu", train=stand_in([])), n_trials=1)
    assert candidates(open_study(run), run, 1) == [plain.trials[0].params]


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_the_random_phase_is_the_same_with_one_process_or_two(tmp_path: Path, sampler: str) -> None:
    alone = make_run(tmp_path / "alone", sampler=sampler, seed=5)
    drawn_alone = candidates(open_study(alone), alone, 4)
    shared = make_run(tmp_path / "shared", sampler=sampler, seed=5)
    one, two = open_study(shared), open_study(shared)  # two workers taking turns
    for study in (one, two, two, one):
        candidates(study, shared, 1)
    assert [t.params for t in one.trials] == drawn_alone  # trial n drew what trial n draws alone


def test_a_study_seeded_at_the_largest_seed_draws_past_its_first_trial(tmp_path: Path) -> None:
    run = make_run(tmp_path, sampler="random", seed=2**32 - 1)  # trial 1's seed was 2**32: a ValueError
    assert len(candidates(open_study(run), run, 2)) == 2
