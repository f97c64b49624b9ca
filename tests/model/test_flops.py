"""Parameter and FLOP counting: torchvision's figures for GoogLeNet, hand-counted small specs, per-module sums."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any
from unittest.mock import patch

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from sandbox import build
from sandbox.model.flops import PartCounts, count
from sandbox.space.bounds import random_suggest
from sandbox.spec.load import load_spec, read_yaml, validate
from sandbox.spec.primitives import sample
from tests.paths import SEARCH_SPACES

Spec = dict[str, Any]


def test_googlenet_matches_torchvision_on_meta() -> None:
    counts = count(SEARCH_SPACES / "googlenet.yaml")
    with torch.device("meta"):
        reference = torchvision.models.googlenet(aux_logits=False, init_weights=False).eval()
    with FlopCounterMode(display=False) as counter:
        reference(torch.empty(1, 3, 224, 224, device="meta"))
    assert (counts.params, counts.flops) == (6_624_904, 2_996_752_384)
    assert counts.params == sum(p.numel() for p in reference.parameters())
    assert counts.flops == counter.get_total_flops()


@pytest.mark.parametrize("name", ["googlenet.yaml", "googlenet_2014.yaml"])
def test_totals_are_the_sum_of_inference_modules(name: str) -> None:
    counts = count(SEARCH_SPACES / name)
    inference = [m for m in counts.modules if m.kind != "aux"]
    assert counts.flops == sum(m.flops for m in inference)
    assert counts.params == sum(m.params for m in inference)
    model = build(SEARCH_SPACES / name, device="meta")
    aux_params = sum(p.numel() for p in model.aux.parameters())
    assert counts.params == sum(p.numel() for p in model.parameters()) - aux_params  # aux: training only


def test_small_spec_counts_by_hand(small_spec: Callable[[], Spec]) -> None:
    """2 FLOPs per multiply-add of each convolution and the classifier; pools and norms count 0."""
    counts = count(small_spec())
    module_0 = 2 * 28 * 28 * (16 * 8 + (16 * 8 + 8 * 16 * 9) + (16 * 4 + 4 * 8 * 9 + 8 * 8 * 9) + 16 * 8)
    module_1 = 2 * 14 * 14 * (40 * 16 + 40 * 4 + 4 * 8 * 25)
    assert {m.name: m.flops for m in counts.modules} == {
        "stem": 2 * 28 * 28 * 9 * 16,
        "0.0": module_0,
        "stage1.downsample": 0,
        "1.0": module_1,
        "head": 2 * 24 * 10,
    }
    assert {m.name: m.shape for m in counts.modules}["1.0"] == (24, 14, 14)


def test_aux_rows_are_labelled_by_the_module_they_tap(small_spec: Callable[[], Spec]) -> None:
    """Listed in either order in the spec, each aux row carries its own head's parameters."""
    heads = [{"after": "1.0", "conv": 4, "hidden": 16}, {"after": "0.0", "conv": 8, "hidden": 16}]
    counts = count(small_spec() | {"aux": heads})
    after_0 = (40 * 8 + 2 * 8) + (8 * 8 * 8 * 16 + 16) + (16 * 10 + 10)  # conv+bn, fc1 on 8x8 pooled, fc2
    after_1 = (24 * 4 + 2 * 4) + (4 * 4 * 4 * 16 + 16) + (16 * 10 + 10)  # 14x14 pools to 4x4
    assert {m.name: m.params for m in counts.modules if m.kind == "aux"} == {"aux@0.0": after_0, "aux@1.0": after_1}


@pytest.mark.parametrize("name", ["quickstart.yaml", "variants_fmnist.yaml", "inception_resnet_v2.yaml"])
def test_part_counts_equal_count_on_drawn_candidates(name: str) -> None:
    """The cached count a search draws with is `count` itself, candidate by candidate (residual
    modules included), and a part seen before is not counted again."""
    space = read_yaml(SEARCH_SPACES / name)
    rng = random.Random(0)
    counter = PartCounts()
    drawn = 12 if "fmnist" in name or "quickstart" in name else 2
    for _ in range(drawn):
        raw = sample(space, random_suggest(rng))
        raw.pop("search", None)
        spec = validate(raw, base=SEARCH_SPACES)
        mine, theirs = counter(spec), count(spec)
        assert (mine.flops, mine.params) == (theirs.flops, theirs.params)
    with patch("sandbox.model.flops._inception", side_effect=AssertionError("counted again")):
        assert counter(spec).flops == theirs.flops


def test_part_counts_leave_aux_heads_to_count() -> None:
    spec = load_spec(SEARCH_SPACES / "googlenet_2014.yaml")
    assert spec.aux
    assert PartCounts()(spec).flops == count(spec).flops
