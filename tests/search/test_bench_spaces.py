"""bench/spaces/quickstart_wide.yaml, the wider space bench/search_vs_random.py was run on: it must
stay the quickstart with wider ranges (same recipe, data and budget, every quickstart dimension
still searched), or its figures in bench/README.md stop being a comparison with the quickstart's."""

from __future__ import annotations

import random

from sandbox.model.flops import count
from sandbox.space.bounds import random_suggest
from sandbox.spec.load import read_yaml, validate
from sandbox.spec.primitives import primitives, sample
from sandbox.spec.search import search_config
from tests.paths import REPO, SEARCH_SPACES

WIDE = REPO / "bench" / "spaces" / "quickstart_wide.yaml"


def test_the_wide_space_is_the_quickstart_with_wider_ranges() -> None:
    wide, quick = read_yaml(WIDE), read_yaml(SEARCH_SPACES / "quickstart.yaml")
    assert (wide["train"], wide["data"], wide["input"]) == (quick["train"], quick["data"], quick["input"])
    assert search_config(wide["search"]).budget == search_config(quick["search"]).budget
    wide_dims = {p.path: p.distribution for p in primitives(wide)}
    assert set(wide_dims) > {p.path for p in primitives(quick)}
    assert wide_dims["stages[1].modules[0].branches[0].out"].high == 80  # the quickstart stops at 64


def test_random_wide_candidates_build_and_straddle_the_budget() -> None:
    wide = read_yaml(WIDE)
    budget = search_config(wide["search"]).budget
    rng = random.Random(0)
    flops = [count(validate(sample(wide, random_suggest(rng)), base=WIDE.parent)).flops for _ in range(12)]
    assert min(flops) <= budget < max(flops), flops
