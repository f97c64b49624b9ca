"""Scoring subnets with inherited weights: batch norms measured afresh, a seeded screen, finalists scored in full."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from sandbox.search.oneshot.score import Scorer
from sandbox.search.oneshot.strategy import finals
from sandbox.search.oneshot.supernet import Supernet
from sandbox.space.bounds import random_params
from sandbox.spec.one_shot import OneShotConfig
from sandbox.train.data import Data, Split
from tests.search.oneshot.test_supernet import SPACE
from tests.search.oneshot.test_train import tiny_data


def scorer(data: Data, **settings: Any) -> Scorer:
    torch.manual_seed(0)
    net = Supernet(SPACE, Path.cwd())
    return Scorer(net, data, OneShotConfig(**settings), batch=16, seed=0, channels_last=True)


def test_recalibration_measures_each_subnet_afresh() -> None:
    scoring = scorer(tiny_data(), calibration=2, screen_calibration=1, screen_images=8)
    rng = random.Random(3)
    first, second = (scoring.net.select(random_params(SPACE, rng)) for _ in range(2))
    scoring.calibrate(first)
    stem_norm = scoring.net.holders[0].wide.bn  # type: ignore[union-attr]
    width = first.stem.call.params["out"]
    assert stem_norm.running_mean[:width].abs().sum() > 0  # measured, not the reset zeros
    a, screened = scoring.score(first), scoring.screen(first)
    scoring.score(second)
    scoring.screen(second)
    assert (scoring.score(first), scoring.screen(first)) == (a, screened)  # nothing carried over
    assert 0 <= a <= 1 and 0 <= screened <= 1


def test_the_screen_sees_a_seeded_draw_of_the_validation_split_not_its_first_images() -> None:
    data = tiny_data()
    ordered = Split(data.val.images, torch.arange(24) // 6, data.val.device)  # in class order, as a folder may be
    data = Data(data.name, data.root, data.train, ordered, data.test)
    first, again = scorer(data, screen_images=8), scorer(data, screen_images=8)
    labels = first.screen_split.labels
    assert len(labels) == 8 and len(set(labels.tolist())) > 1
    assert torch.equal(labels, again.screen_split.labels)
    assert first.screens  # 8 of the 24 validation images


def test_without_a_cheaper_screen_every_candidate_is_scored_once() -> None:
    scoring = scorer(tiny_data(), screen_images=100, calibration=2, screen_calibration=2)
    assert not scoring.screens and len(scoring.screen_split) == 24
    screened = [{"params": {"k": k}, "screen": s} for k, s in enumerate([0.2, 0.5, 0.1])]
    ranked = finals(screened, scoring, subnets=None, finalists=1)  # type: ignore[arg-type]  # never asked
    assert [c["score"] for c in ranked] == [0.5, 0.2, 0.1]


class FullScores:
    """A stand-in scorer whose full score reverses the screen's order among the finalists."""

    screens = True

    def score(self, subnet: Any) -> float:
        return float(subnet)


def test_finalists_rank_by_their_full_score_above_the_rest_by_their_screen() -> None:
    screened = [{"params": k, "screen": s} for k, s in enumerate([0.4, 0.9, 0.7, 0.8, 0.1])]
    ranked = finals(screened, FullScores(), subnets=lambda params: params / 10, finalists=3)  # type: ignore[arg-type]
    assert [c["params"] for c in ranked] == [3, 2, 1, 0, 4]  # finalists 1, 3, 2 by k/10; then 0, 4 by screen
    assert [("score" in c) for c in ranked] == [True, True, True, False, False]
