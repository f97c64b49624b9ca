"""Random sampling inside the FLOP band, with no trial for a draw that falls outside it.

Random sampling needs nothing from earlier trials, so the draws it would reject need not be trials at
all: before a trial is created (`sandbox.search.ceiling.SharedStudy.ask`), `InBandDraws` draws
candidates uniformly, primitive by primitive (as Optuna's RandomSampler and `sandbox show` do),
counts each the one documented way, and enqueues the first inside [floor, budget] with the number of
draws it took (`DRAWS`). The study then holds the candidates it trains, not ten rejected draws per
training, and a draw costs a count instead of a stored trial. The draws of trial N come from a
generator seeded with the study's seed plus N, so a seed gives the same candidates with any number of
workers (`sandbox.search.sampler`).

Model-based samplers (TPE, GP, NSGA-II) learn from their rejected proposals, so theirs stay trials
(`sandbox.search.objective`). A band so thin that `BAND_DRAWS` draws in a row miss it ends the search
with `DrawsExhausted`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from sandbox.errors import SpecError
from sandbox.model.flops import Counts, PartCounts
from sandbox.search.ceiling import DrawsExhausted
from sandbox.search.record import DRAWS
from sandbox.search.run import SearchRun
from sandbox.space.bounds import random_suggest
from sandbox.spec.load import Spec, validate
from sandbox.spec.primitives import recording

BAND_DRAWS = 500  # misses in a row that end a search: under 1% of the space in the band (0.99**500 < 1%)


class InBandDraws:
    """`draw(number)`: the params of trial `number`, a random candidate inside the band, and its user attrs."""

    def __init__(self, run: SearchRun, counter: Callable[[Spec], Counts] | None = None) -> None:
        """`counter`: a benchmark's own cache of part counts, shared across its searches (`bench/surrogate.py`)."""
        self.run = run
        self.counter = counter or PartCounts()

    def __call__(self, number: int) -> tuple[dict[str, Any], dict[str, Any]]:
        config = self.run.config
        rng = random.Random((config.seed + number) % 2**32)
        for drawn in range(1, BAND_DRAWS + 1):
            params: dict[str, Any] = {}
            raw = self.run.concrete_spec(recording(random_suggest(rng), params), number)
            try:
                flops = self.counter(validate(raw, base=self.run.base)).flops
            except SpecError:  # e.g. every branch of a module chosen `none`: no network, draw again
                continue
            if config.in_band(flops):
                return params, {DRAWS: drawn}
        raise DrawsExhausted(
            f"{BAND_DRAWS} random candidates in a row fell outside the FLOP band "
            f"({(config.floor_flops or 0) / 1e6:.2f} to {(config.budget or 0) / 1e6:.2f} MFLOPs): "
            "widen search.budget or lower its floor"
        )


def band_draws(run: SearchRun, counter: Callable[[Spec], Counts] | None = None) -> InBandDraws | None:
    """The in-band draws of a random search with a FLOP band; None for other samplers or no band."""
    config = run.config
    if config.sampler != "random" or config.budget is None:
        return None
    return InBandDraws(run, counter)
