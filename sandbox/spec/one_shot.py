"""`search.strategy` and `search.one_shot`: the keys of a weight-sharing search, read apart from
the rest of `search:` so that the default search's settings (`sandbox.spec.search`) stay as they are.

    search:
      strategy: one-shot            # default: every candidate trained from scratch
      one_shot: {epochs: 64, sampling: uniform, candidates: 200, top_k: 3, calibration: 8, sampler: random}

`epochs` trains the supernet (the `train:` recipe's schedule stretched to them; default: the
recipe's own), `sampling` is `uniform` (SPOS) or `sandwich`, `candidates` subnets in the budget band
are scored with inherited weights (drawn at random, or proposed by TPE from the scores so far:
`sampler`), and the `top_k` best are trained as ordinary trials of the study.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from sandbox.errors import SpecError
from sandbox.spec.checks import at_least, parse_section

STRATEGIES = ("default", "one-shot")
KEYS = ("strategy", "one_shot")
Count = Annotated[int, at_least(1)]


@dataclass(frozen=True)
class OneShotConfig:
    epochs: Count | None = None  # None: the space's train.epochs
    sampling: Literal["uniform", "sandwich"] = "uniform"
    candidates: Count = 200
    top_k: Count = 3
    calibration: Count = 8  # training batches each subnet's batch norms are measured on
    sampler: Literal["random", "tpe"] = "random"  # which subnets are scored (`sandbox.search.oneshot.explore`)


def without_one_shot(section: Any) -> Any:
    """The `search:` mapping without the one-shot keys (checked here), for the default search's parser."""
    if not isinstance(section, Mapping):
        return section
    one_shot_config(section)
    return {key: value for key, value in section.items() if key not in KEYS}


def one_shot_config(section: Mapping[str, Any]) -> OneShotConfig | None:
    """The one-shot settings of a `search:` mapping; None for the default strategy."""
    strategy = section.get("strategy", "default")
    if strategy not in STRATEGIES:
        raise SpecError("search.strategy", f"expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if strategy == "default":
        if "one_shot" in section:
            raise SpecError("search.one_shot", "needs search.strategy: one-shot")
        return None
    return parse_section(OneShotConfig, section.get("one_shot") or {}, "search.one_shot")
