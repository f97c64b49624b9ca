"""The `search:` section: budgets, samplers, pruners, objectives, and their errors."""

from __future__ import annotations

import math

import optuna
import pytest

from sandbox.errors import SpecError
from sandbox.search.config import SearchConfig, parse_flops, search_config


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
    assert isinstance(search_config({"sampler": name}).make_sampler(), cls)


def test_pruning_is_off_for_two_objectives() -> None:
    config = search_config({"objective": ["accuracy", "flops"], "pruner": "median"})
    assert config.directions == ["maximize", "minimize"]
    assert isinstance(config.make_pruner(), optuna.pruners.NopPruner)
    assert isinstance(search_config({"pruner": "hyperband"}).make_pruner(), optuna.pruners.HyperbandPruner)


def test_cli_flags_override_the_spec() -> None:
    config = search_config({"budget": "50M", "trials": 4}).with_overrides(budget="20M", trials=None)
    assert (config.budget, config.trials) == (20_000_000, 4)
