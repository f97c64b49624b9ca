"""The `search:` section: budgets, samplers, pruners, objectives, and their errors."""

from __future__ import annotations

import math

import optuna
import pytest

from sandbox.errors import SpecError
from sandbox.search.config import make_pruner, make_sampler
from sandbox.spec.search import SearchConfig, parse_flops, search_config


@pytest.mark.parametrize(
    ("text", "flops"), [("50M", 50_000_000), ("1.5G", 1_500_000_000), (30_000_000, 30_000_000), ("20 MFLOPs", 20e6)]
)
def test_flop_amounts(text, flops) -> None:
    assert parse_flops(text, "search.budget") == flops


def test_a_budget_too_large_for_a_float_is_still_a_count() -> None:
    assert parse_flops(10**400, "search.budget") == 10**400


def test_a_budget_from_the_command_line_that_overflows_names_the_flag() -> None:
    with pytest.raises(SpecError) as err:
        SearchConfig().with_overrides(budget="9" * 400)
    assert err.value.path == "--budget"


@pytest.mark.parametrize(
    ("section", "path"),
    [
        ({"budget": "lots"}, "search.budget"),
        ({"budget": {"params": 3}}, "search.budget"),
        ({"budget": math.inf}, "search.budget"),  # was an OverflowError traceback
        ({"budget": math.nan}, "search.budget"),
        ({"budget": "9" * 400 + "G"}, "search.budget"),  # finite text, infinite as a float
        ({"budget": 0.5}, "search.budget"),  # less than one FLOP
        ({"trials": 0}, "search.trials"),
        ({"sampler": "cmaes"}, "search.sampler"),
        ({"pruner": "sha"}, "search.pruner"),
        ({"objective": ["flops"]}, "search.objective"),
        ({"pruner": "asha", "first_rung": 0}, "search.first_rung"),
        ({"reduction_factor": 1}, "search.reduction_factor"),
        ({"reduction_factor": 2.5}, "search.reduction_factor"),
        ({"startup_trials": 0}, "search.startup_trials"),
        ({"rung_schedule": "restart"}, "search.rung_schedule"),
        ({"rung_schedule": "complete"}, "search.rung_schedule"),  # with the median pruner
        ({"rung_schedule": "complete", "pruner": "asha", "objective": ["accuracy", "flops"]}, "search.rung_schedule"),
        ({"trails": 4}, "search.trails"),
        ({"reference": 3}, "search.reference"),
        ({"reference": " "}, "search.reference"),
        ({"reference": "b.yaml", "reference_seeds": 0}, "search.reference_seeds"),
        ({"reference_seeds": 3}, "search.reference_seeds"),  # with nothing to compare with
    ],
)
def test_bad_values_name_their_key(section, path) -> None:
    with pytest.raises(SpecError) as err:
        search_config(section)
    assert err.value.path == path


@pytest.mark.parametrize(
    ("flag", "value"), [("trials", 0), ("workers", -1), ("epochs", 0), ("reference_seeds", 0), ("seed", -1)]
)
def test_bad_command_line_values_name_their_flag(flag, value) -> None:
    with pytest.raises(SpecError) as err:
        SearchConfig().with_overrides(**{flag: value})
    assert err.value.path == "--" + flag.replace("_", "-")


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("tpe", optuna.samplers.TPESampler),
        ("nsga2", optuna.samplers.NSGAIISampler),
        ("gp", optuna.samplers.GPSampler),
        ("random", optuna.samplers.RandomSampler),
    ],
)
def test_samplers(name, cls) -> None:
    assert isinstance(make_sampler(search_config({"sampler": name})), cls)


def test_pruning_is_off_for_two_objectives() -> None:
    config = search_config({"objective": ["accuracy", "flops"], "pruner": "median"})
    assert config.directions == ["maximize", "minimize"]
    assert isinstance(make_pruner(config), optuna.pruners.NopPruner)
    assert isinstance(make_pruner(search_config({"pruner": "hyperband"})), optuna.pruners.HyperbandPruner)


def test_cli_flags_override_the_spec() -> None:
    config = search_config({"budget": "50M", "trials": 4}).with_overrides(budget="20M", trials=None)
    assert (config.budget, config.trials) == (20_000_000, 4)


def test_asha_stops_a_trial_outside_the_best_third_at_its_first_rung() -> None:
    """Successive halving compares a trial with every trial that reached the same rung, pruned or not."""
    config = search_config({"pruner": "asha", "first_rung": 2, "reduction_factor": 3})
    assert config.rungs(16) == [2, 6]
    study = optuna.create_study(direction="maximize", pruner=make_pruner(config))
    verdicts = []
    for score in (0.9, 0.5, 0.8, 0.7, 0.95, 0.6):
        trial = study.ask()
        trial.report(score, 1)
        assert not trial.should_prune(), "no rung before epoch 2"
        trial.report(score, 2)
        verdicts.append(trial.should_prune())
        study.tell(
            trial,
            state=optuna.trial.TrialState.PRUNED if verdicts[-1] else None,
            values=None if verdicts[-1] else score,
        )
    # 0.9 is first (alone, best); 0.5 is below 0.9 in the top third of 2 -> pruned; 0.95 beats all
    assert verdicts == [False, True, True, True, False, True]


def test_rungs_follow_the_reduction_factor_and_stop_before_the_last_epoch() -> None:
    assert search_config({"pruner": "hyperband", "first_rung": 1, "reduction_factor": 2}).rungs(16) == [1, 2, 4, 8]
    assert search_config({"pruner": "median"}).rungs(16) == []
    assert search_config({"pruner": "asha", "first_rung": 16}).rungs(16) == []


def test_tpe_models_the_conditional_space_jointly() -> None:
    sampler = make_sampler(search_config({"startup_trials": 7}))
    assert (sampler._n_startup_trials, sampler._multivariate, sampler._group) == (7, True, True)


@pytest.mark.parametrize(("floor", "flops"), [("12M", 12_000_000), (0.75, 12_000_000), (12_000_000, 12_000_000)])
def test_a_floor_sits_inside_the_budget_as_a_count_or_a_fraction(floor, flops) -> None:
    config = search_config({"budget": {"flops": "16M", "floor": floor}})
    assert (config.budget, config.floor_flops) == (16_000_000, flops)
    assert config.in_band(14_000_000) and not config.in_band(11_999_999) and not config.in_band(16_000_001)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"budget": {"flops": "16M", "floor": "20M"}}, "search.budget.floor: 20.00 MFLOPs is not below the budget"),
        ({"budget": {"flops": "16M", "floor": "16M"}}, "search.budget.floor: 16.00 MFLOPs is not below the budget"),
        ({"budget": {"flops": "16M", "floor": "lots"}}, "search.budget.floor: expected a FLOP count"),
        ({"budget": {"flops": "16M", "floor": -1}}, "search.budget.floor: expected a FLOP count"),
        ({"budget": "16M", "floor": "12M"}, "search.floor: unknown key (a floor goes inside search.budget"),
        ({"budget": {"flops": "16M", "cap": 1}}, "search.budget: expected a FLOP count or {flops: COUNT, floor"),
    ],
)
def test_a_bad_floor_names_its_key(section, message) -> None:
    with pytest.raises(SpecError) as err:
        search_config(section)
    assert str(err.value).startswith(message)


def test_a_floor_from_the_command_line_above_the_budget_names_the_flag() -> None:
    config = search_config({"budget": "16M"}).with_overrides(floor="20M")
    with pytest.raises(SpecError, match=r"^--floor: 20.00 MFLOPs is not below"):
        config.check_band("--floor")
