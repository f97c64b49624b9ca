"""The `search:` section of a spec (budget, trials, sampler, pruner, objective), with CLI overrides.

Only the section: the Optuna samplers and pruners it names are made in `sandbox.search.config`, so
reading a spec never needs the search.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from sandbox.errors import SpecError
from sandbox.spec.checks import Parse, at_least, parse_section, replace_checked
from sandbox.spec.one_shot import without_one_shot

OBJECTIVES = {("accuracy",), ("accuracy", "flops")}
_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9}
_AMOUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMG]?)\s*(FLOPS?)?\s*$", re.IGNORECASE)
Count = Annotated[int, at_least(1)]


def parse_flops(value: Any, path: str) -> int:
    """`50M`, `1.5G`, `30000000` or `50 MFLOPs` → an integer number of FLOPs.

    Infinity, NaN and numbers too large for a float (`9999...9G`) are refused here: they would
    otherwise surface as an OverflowError when the count is made an integer."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    amount = value if isinstance(value, float) else _amount(str(value))
    if amount is None or not math.isfinite(amount) or amount < 1:
        raise SpecError(path, f"expected a FLOP count such as 50M, 1.5G or 30000000, got {value!r}")
    return int(amount)


def _amount(text: str) -> float | None:
    """The number of FLOPs `text` spells (`1.5G`, `20 MFLOPs`), None when it spells none."""
    match = _AMOUNT.match(text)
    return float(match[1]) * _SUFFIX[match[2].upper()] if match else None


def _budget(value: Any, path: str) -> int:
    """A FLOP count, or `{flops: COUNT}`."""
    if isinstance(value, Mapping):
        if set(value) != {"flops"}:
            raise SpecError(path, "expected a FLOP count or {flops: COUNT, floor: COUNT}")
        value = value["flops"]
    return parse_flops(value, path)


def _floor(value: Any, path: str) -> int | float:
    """A FLOP count (`12M`), or a fraction of the budget strictly between 0 and 1 (`0.75`)."""
    if isinstance(value, float) and 0 < value < 1:
        return value
    return parse_flops(value, path)


def _objective(value: Any, path: str) -> tuple[str, ...]:
    objective = tuple(value) if isinstance(value, list) else (value,)
    if objective not in OBJECTIVES:
        raise SpecError(path, f"expected accuracy or [accuracy, flops], got {value!r}")
    return objective


def _spec_file(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(path, f"expected the path of a spec file, got {value!r}")
    return value


@dataclass(frozen=True)
class SearchConfig:
    budget: Annotated[int, Parse(_budget)] | None = None  # forward FLOPs per image; None = no budget
    # `budget: {flops: 16M, floor: 12M}`: candidates under the floor are never trained either, as
    # over-budget ones are not; a float in (0, 1) is a fraction of the budget
    floor: Annotated[int | float, Parse(_floor)] | None = None
    trials: Count = 20
    sampler: Literal["tpe", "nsga2", "gp", "random"] = "tpe"
    pruner: Literal["median", "asha", "hyperband", "none"] = "median"
    # asha and hyperband: the first rung, in epochs, and the factor between rungs; a trial goes past
    # a rung only if it is in the best 1/reduction_factor of all trials that reached it
    first_rung: Count = 2
    reduction_factor: Annotated[int, at_least(2)] = 3
    # slice: a rung reads the validation accuracy at that epoch of the trial's one long schedule;
    # complete (asha only): the trial first trains a complete short schedule per rung, as Hyperband assumes
    rung_schedule: Literal["slice", "complete"] = "slice"
    startup_trials: Count | None = None  # TPE's and GP's random trials before they model; None: 10 and 5
    objective: Annotated[tuple[str, ...], Parse(_objective)] = ("accuracy",)
    epochs: Count | None = None  # per trial; None = the spec's train.epochs
    seed: Annotated[int, at_least(0)] = 0
    workers: Count | None = None  # None: one per usable core (`sandbox.search.workers.cap_workers`)
    population: Count = 8  # NSGA-II generation size: small, so a short study sees several generations
    reference: Annotated[str, Parse(_spec_file)] | None = None  # a spec the best is compared with, trained alike
    reference_seeds: Count = 1  # seeds both networks train with for that comparison

    @property
    def floor_flops(self) -> int | None:
        """The floor in FLOPs (a fraction resolved against the budget); None without one."""
        if self.floor is None or self.budget is None:
            return None
        return round(self.floor * self.budget) if isinstance(self.floor, float) else self.floor

    def check_band(self, floor_key: str = "search.budget.floor") -> None:
        """A floor needs a budget above it (checked after CLI overrides, which may change either)."""
        if self.floor is None:
            return
        if self.budget is None:
            raise SpecError(floor_key, "a floor needs a budget above it (search.budget: {flops: ..., floor: ...})")
        floor = self.floor_flops
        assert floor is not None
        if floor >= self.budget:
            raise SpecError(
                floor_key, f"{floor / 1e6:.2f} MFLOPs is not below the budget of {self.budget / 1e6:.2f} MFLOPs"
            )

    def in_band(self, flops: int) -> bool:
        return (self.budget is None or flops <= self.budget) and flops >= (self.floor_flops or 0)

    @property
    def multi_objective(self) -> bool:
        return len(self.objective) > 1

    @property
    def directions(self) -> list[Literal["maximize", "minimize"]]:
        both: list[Literal["maximize", "minimize"]] = ["maximize", "minimize"]
        return both[: len(self.objective)]

    def with_overrides(self, **overrides: Any) -> SearchConfig:
        """CLI flags override the spec, checked like it; `None` means the flag was not given."""
        return replace_checked(self, overrides, lambda key: f"--{key.replace('_', '-')}")

    def trial_epochs(self, spelled: Any) -> Any:
        """The epochs each trial trains, derived in this one place: `search.epochs` (--epochs), else what
        the spec spells as `train.epochs` (a range in a space, a number in a trial's concrete spec)."""
        return spelled if self.epochs is None else self.epochs

    def rungs(self, epochs: int) -> list[int]:
        """The epochs at which the pruner may stop a trial of `epochs` epochs (asha's rungs; for median
        every epoch from the third on would be listed, so it returns [])."""
        if self.pruner not in ("asha", "hyperband") or self.multi_objective:
            return []
        rungs, rung = [], self.first_rung
        while rung < epochs:
            rungs.append(rung)
            rung *= self.reduction_factor
        return rungs


def search_config(section: Mapping[str, Any]) -> SearchConfig:
    """A spec's `search:` mapping checked, naming the offending key."""
    section = without_one_shot(section)  # search.strategy and search.one_shot: `sandbox.spec.one_shot`
    budget = section.get("budget") if isinstance(section, Mapping) else None
    if isinstance(budget, Mapping) and "floor" in budget:  # the floor is spelled inside the budget
        if "floor" in section:
            raise SpecError("search.floor", "unknown key (a floor goes inside search.budget: {flops: ..., floor: ...})")
        floor = _floor(budget["floor"], "search.budget.floor")
        section = {**section, "budget": {k: v for k, v in budget.items() if k != "floor"}, "floor": floor}
    elif isinstance(section, Mapping) and "floor" in section:
        raise SpecError("search.floor", "unknown key (a floor goes inside search.budget: {flops: ..., floor: ...})")
    config = parse_section(SearchConfig, section, "search")
    config.check_band()
    if config.rung_schedule == "complete" and (config.pruner != "asha" or config.multi_objective):
        raise SpecError("search.rung_schedule", "complete needs pruner: asha and one objective")
    if "reference_seeds" in section and config.reference is None:
        raise SpecError("search.reference_seeds", "needs search.reference, the network to compare with")
    return config
