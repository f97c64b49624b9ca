"""The `search:` section of a spec (budget, trials, sampler, pruner, objective), with CLI overrides."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import optuna

from sandbox.errors import SpecError

SAMPLERS = ("tpe", "nsga2", "gp", "random")
PRUNERS = ("median", "hyperband", "none")
OBJECTIVES = {("accuracy",), ("accuracy", "flops")}
_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9}
_AMOUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMG]?)\s*(FLOPS?)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class SearchConfig:
    budget: int | None = None  # forward FLOPs per image; None = no budget
    trials: int = 20
    sampler: str = "tpe"
    pruner: str = "median"
    objective: tuple[str, ...] = ("accuracy",)
    epochs: int | None = None  # per trial; None = the spec's train.epochs
    seed: int = 0
    workers: int = 1
    population: int = 8  # NSGA-II generation size: small, so a short study sees several generations
    reference: str | None = None  # a spec file the best candidate is compared with, trained the same way
    reference_seeds: int = 1  # seeds both networks train with for that comparison

    @property
    def multi_objective(self) -> bool:
        return len(self.objective) > 1

    @property
    def directions(self) -> list[str]:
        return ["maximize", "minimize"][: len(self.objective)]

    def with_overrides(self, **overrides: Any) -> SearchConfig:
        """CLI flags override the spec; `None` means the flag was not given."""
        given = {key: value for key, value in overrides.items() if value is not None}
        if "budget" in given:
            given["budget"] = parse_flops(given["budget"], "--budget")
        for key in set(given) & set(_COUNTS):
            given[key] = _count(given[key], key, f"--{key.replace('_', '-')}")
        return replace(self, **given)

    def make_sampler(self, worker: int = 0) -> optuna.samplers.BaseSampler:
        seed = self.seed + worker
        if self.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=self.workers > 1)
        if self.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=self.population)
        if self.sampler == "gp":
            # A choice of whole branches or stages makes the space conditional: parameters that not
            # every candidate has are sampled at random, as intended, so Optuna's warning is noise.
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=5, warn_independent_sampling=False)
        return optuna.samplers.RandomSampler(seed=seed)

    def make_pruner(self) -> optuna.pruners.BasePruner:
        if self.pruner == "median" and not self.multi_objective:
            # n_min_trials: over-budget trials end COMPLETE without a curve, so Optuna's startup
            # count alone would let the first trained curve be "the median" of everything after it.
            return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1, n_min_trials=4)
        if self.pruner == "hyperband" and not self.multi_objective:
            return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto", reduction_factor=3)
        return optuna.pruners.NopPruner()


_COUNTS = ("trials", "epochs", "seed", "workers", "population", "reference_seeds")


def _count(value: Any, key: str, path: str) -> int:
    """A whole number of trials, epochs, workers ...: at least 1 (a seed may be 0)."""
    lowest = 0 if key == "seed" else 1
    if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
        kind = "a non-negative" if lowest == 0 else "a positive"
        raise SpecError(path, f"expected {kind} integer, got {value!r}")
    return value


def parse_flops(value: Any, path: str) -> int:
    """`50M`, `1.5G`, `30000000` or `50 MFLOPs` → an integer number of FLOPs."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return int(value)
    match = _AMOUNT.match(str(value))
    if not match or float(match[1]) <= 0:
        raise SpecError(path, f"expected a FLOP count such as 50M, 1.5G or 30000000, got {value!r}")
    return int(float(match[1]) * _SUFFIX[match[2].upper()])


def search_config(section: Mapping[str, Any]) -> SearchConfig:
    """Validate a spec's `search:` mapping, naming the offending key."""
    allowed = tuple(field.name for field in fields(SearchConfig))
    for key in section:
        if key not in allowed:
            raise SpecError(f"search.{key}", f"unknown key (allowed here: {', '.join(allowed)})")
    config = SearchConfig()
    values: dict[str, Any] = {}
    if "budget" in section:
        budget = section["budget"]
        if isinstance(budget, Mapping):
            if set(budget) != {"flops"}:
                raise SpecError("search.budget", "expected a FLOP count or {flops: COUNT}")
            budget = budget["flops"]
        values["budget"] = parse_flops(budget, "search.budget")
    for key in set(section) & set(_COUNTS):
        values[key] = _count(section[key], key, f"search.{key}")
    for key, options in (("sampler", SAMPLERS), ("pruner", PRUNERS)):
        if key in section:
            if section[key] not in options:
                raise SpecError(f"search.{key}", f"expected one of {', '.join(options)}, got {section[key]!r}")
            values[key] = section[key]
    if "reference" in section:
        if not isinstance(section["reference"], str) or not section["reference"].strip():
            raise SpecError("search.reference", f"expected the path of a spec file, got {section['reference']!r}")
        values["reference"] = section["reference"]
    if "reference_seeds" in section and "reference" not in section:
        raise SpecError("search.reference_seeds", "needs search.reference, the network to compare with")
    if "objective" in section:
        objective = section["objective"]
        objective = tuple(objective) if isinstance(objective, list) else (objective,)
        if objective not in OBJECTIVES:
            raise SpecError("search.objective", f"expected accuracy or [accuracy, flops], got {section['objective']!r}")
        values["objective"] = objective
    return replace(config, **values)
