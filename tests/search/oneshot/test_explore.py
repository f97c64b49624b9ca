"""Which subnets the supernet screens: only distinct ones inside the band, as many as asked, by either sampler."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from sandbox.search.oneshot.explore import explore
from sandbox.spec.one_shot import OneShotConfig
from sandbox.spec.search import search_config
from tests.search.spaces import tiny_space

SPACE = tiny_space()


def width_flops(params: Mapping[str, Any]) -> int:
    """A stand-in count: the stem width decides (4 → 4M ... 16 → 16M), the branch type adds 1M for conv3x3."""
    return 1_000_000 * (params["stem.out"] + (params["stages[0].modules[0].branches[1].type"] == "conv3x3"))


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_only_distinct_subnets_inside_the_band_are_scored(sampler: str) -> None:
    config = search_config({"budget": {"flops": "13M", "floor": "8M"}, "seed": 1})
    scored_calls: list[Mapping[str, Any]] = []

    def evaluate(params: Mapping[str, Any]) -> tuple[int, float | None]:
        flops = width_flops(params)
        if not config.in_band(flops):
            return flops, None
        scored_calls.append(params)
        return flops, params["stages[0].modules[0].branches[0].out"] / 10

    found = explore(SPACE, config, OneShotConfig(candidates=6, sampler=sampler), evaluate)  # type: ignore[arg-type]
    assert len(found) == 6 == len(scored_calls)  # no subnet scored twice
    assert len({repr(sorted(c["params"].items())) for c in found}) == 6
    assert all(8_000_000 <= c["flops"] <= 13_000_000 for c in found)
    assert [c["screen"] for c in found] == [p["stages[0].modules[0].branches[0].out"] / 10 for p in scored_calls]


def test_a_band_with_fewer_subnets_than_asked_gives_those_there_are() -> None:
    config = search_config({"budget": {"flops": "4.5M", "floor": "4M"}, "seed": 0})  # stem 4, no conv3x3: 4 subnets

    def evaluate(params: Mapping[str, Any]) -> tuple[int, float | None]:
        flops = width_flops(params)
        return flops, 0.5 if config.in_band(flops) else None

    found = explore(SPACE, config, OneShotConfig(candidates=5), evaluate)
    assert sorted(repr(sorted(c["params"].items())) for c in found) == sorted(
        repr(
            sorted(
                {
                    "stem.out": 4,
                    "stages[0].modules[0].branches[0].out": w,
                    "stages[0].modules[0].branches[1].type": t,
                }.items()
            )
        )
        for w in (4, 8)
        for t in ("double3x3", "none")
    )
