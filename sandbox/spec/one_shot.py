"""`search.strategy` and `search.one_shot`: the keys of a weight-sharing search, read apart from
the rest of `search:` so that the default search's settings (`sandbox.spec.search`) stay as they are.

    search:
      strategy: one-shot            # default: every candidate trained from scratch
      one_shot: {epochs: 64, sampling: uniform, candidates: 1000, top_k: 3, sampler: random,
                 screen_images: 256, screen_calibration: 2, finalists: 50, calibration: 8}

`epochs` trains the supernet (the `train:` recipe's schedule stretched to them; default: the
recipe's own), `sampling` is `uniform` (SPOS) or `sandwich`. `candidates` subnets in the budget band
are screened with inherited weights (drawn at random, or proposed by TPE from the scores so far:
`sampler`): batch norms measured on `screen_calibration` training batches, accuracy on
`screen_images` validation images. The `finalists` best are scored in full (`calibration` batches,
the whole validation split), and the `top_k` best of those are trained as ordinary trials of the
study (`sandbox.search.oneshot.score`).
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
    candidates: Count = 1000
    top_k: Count = 3
    sampler: Literal["random", "tpe"] = "random"  # which subnets are scored (`sandbox.search.oneshot.explore`)
    screen_images: Count = 256  # validation images every candidate is screened on
    screen_calibration: Count = 2  # training batches its batch norms are measured on for the screen
    finalists: Count = 50  # the screen's best, scored in full
    calibration: Count = 8  # training batches a finalist's batch norms are measured on (and an export's)


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
    config = parse_section(OneShotConfig, section.get("one_shot") or {}, "search.one_shot")
    if config.finalists < config.top_k:
        raise SpecError(
            "search.one_shot.finalists", f"must be at least top_k ({config.top_k}): the top k are finalists"
        )
    if config.screen_calibration > config.calibration:
        raise SpecError(
            "search.one_shot.screen_calibration",
            f"must be at most calibration ({config.calibration}): the screen measures on the first of those batches",
        )
    return config
