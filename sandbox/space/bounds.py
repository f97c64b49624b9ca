"""FLOP bounds of a search space: its smallest and largest candidates, and how much fits a budget.

Exact bounds would mean enumerating the space, so: the smallest is found by coordinate descent
(numbers at their low end, each choice set to its cheapest option in turn, repeated until nothing
improves), the largest likewise upwards, and the share under a budget is estimated from random
samples. Every candidate is counted the one documented way (`sandbox.model.flops`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.distributions import CategoricalDistribution, IntDistribution

from sandbox.errors import SpecError
from sandbox.model.flops import count
from sandbox.spec.load import validate
from sandbox.spec.primitives import Primitive, Suggest, lowest, recording, sample


@dataclass(frozen=True)
class SpaceFlops:
    smallest: int
    largest: int
    samples: int
    within_budget: float | None  # share of random samples under the budget; None without a budget
    within_band: float | None = None  # share of random samples in [floor, budget]; None without a floor


def candidate_flops(raw: Mapping[str, Any], base: Path) -> int | None:
    """FLOPs of one concrete candidate, None when the candidate is not a valid network."""
    try:
        return count(validate(raw, base=base)).flops
    except SpecError:
        return None


def _extreme(space: Mapping[str, Any], base: Path, direction: int) -> int | None:
    """Coordinate descent towards the smallest (direction 1) or largest (-1) FLOPs."""
    assignment: dict[str, Any] = {}
    seen: dict[str, Primitive] = {}

    def suggest(primitive: Primitive) -> Any:
        seen.setdefault(primitive.path, primitive)
        dist = primitive.distribution
        start = lowest(primitive) if direction > 0 or isinstance(dist, CategoricalDistribution) else dist.high
        return assignment.setdefault(primitive.path, start)

    def score(flops: int | None) -> float:
        return float("inf") if flops is None else direction * flops

    best = candidate_flops(sample(space, suggest), base)
    improved = True
    while improved:
        improved = False
        for path, primitive in list(seen.items()):
            if not isinstance(primitive.distribution, CategoricalDistribution):
                continue
            for choice in primitive.distribution.choices:
                previous = assignment[path]
                assignment[path] = choice
                flops = candidate_flops(sample(space, suggest), base)
                if score(flops) < score(best):
                    best, improved = flops, True
                else:
                    assignment[path] = previous
    return best


def random_suggest(rng: random.Random) -> Suggest:
    """A `Suggest` drawing each primitive uniformly, as Optuna's RandomSampler does: a choice's options
    alike, a number uniformly on its steps, or on a log scale with `log: true`."""

    def suggest(primitive: Primitive) -> Any:
        dist = primitive.distribution
        if isinstance(dist, CategoricalDistribution):
            return rng.choice(dist.choices)
        if dist.log:
            drawn = math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))
            return min(max(round(drawn), dist.low), dist.high) if isinstance(dist, IntDistribution) else drawn
        if dist.step:
            steps = int(round((dist.high - dist.low) / dist.step))
            return type(dist.low)(dist.low + dist.step * rng.randint(0, steps))
        return rng.uniform(dist.low, dist.high)

    return suggest


def random_params(space: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    """The Optuna params of a candidate drawn uniformly, primitive by primitive, as random sampling draws."""
    params: dict[str, Any] = {}
    sample(space, recording(random_suggest(rng), params))
    return params


def no_valid_candidate(space: Mapping[str, Any], base: Path) -> SpecError:
    """The error for a space none of whose candidates builds: the first candidate's own, which names
    the key at fault (a typo in `defaults` breaks every candidate alike)."""
    what = "no candidate of this search space is a valid network"
    try:
        count(validate(sample(space, lowest), base=base))
    except SpecError as err:
        return SpecError(err.path, f"{what}; the first: {err.message}")
    return SpecError("stages", what)


def smallest_flops(space: Mapping[str, Any], base: Path) -> int | None:
    """The FLOPs of the cheapest valid candidate coordinate descent finds (None: none valid)."""
    return _extreme(space, base, 1)


def largest_flops(space: Mapping[str, Any], base: Path) -> int | None:
    """The FLOPs of the largest valid candidate coordinate ascent finds (None: none valid)."""
    return _extreme(space, base, -1)


def space_flops(
    space: Mapping[str, Any], base: Path, budget: int | None, samples: int = 64, floor: int | None = None
) -> SpaceFlops:
    smallest = smallest_flops(space, base)
    largest = largest_flops(space, base)
    rng = random.Random(0)
    counted = [candidate_flops(sample(space, random_suggest(rng)), base) for _ in range(samples)]
    valid = [f for f in counted if f is not None]
    if smallest is None or not valid:
        raise no_valid_candidate(space, base)
    within = None if budget is None else sum(f <= budget for f in valid) / len(valid)
    band = None if floor is None else sum(floor <= f <= (budget or f) for f in valid) / len(valid)
    return SpaceFlops(min(smallest, *valid), max(largest or 0, *valid), len(valid), within, band)
