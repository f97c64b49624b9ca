"""The comparison with `search.reference`: paired on the same images, with the interval, in words and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sandbox.paired import pack
from sandbox.search.reference import Measured, format_comparison, paired, write_comparison


def measured(name: str, right: list[int], of: int = 100) -> Measured:
    """A network measured with one seed per entry of `right` (images right, first ones), val and test alike."""
    records = tuple({"val": pack(np.arange(of) < n), "test": pack(np.arange(of) < n)} for n in right)
    values = tuple(n / of for n in right)
    return Measured(name, 1_000_000, tuple(range(len(right))), values, values, records)


def test_the_seeds_pairs_are_pooled_image_by_image() -> None:
    difference = paired(measured("best", [90, 80]), measured("reference", [80, 80]), "val")
    assert difference is not None and difference.difference == 5.0  # 10 of 200 pooled images
    assert difference.low < 5.0 < difference.high and (difference.a_only, difference.b_only) == (10, 0)


def test_a_run_without_records_gives_no_paired_difference() -> None:
    old = Measured("reference", 1_000_000, (0,), (0.8,), (0.8,))  # trained before records existed
    assert paired(measured("best", [90]), old, "val") is None


def test_the_lines_and_the_json_give_the_paired_difference(tmp_path: Path) -> None:
    best, reference = measured("best (trial 3)", [90]), measured("reference", [85])
    text = format_comparison(best, reference, tmp_path / "baseline.yaml")
    assert "paired on the same validation images: +5.00 points (95% interval +0." in text
    assert "paired on the same test images" in text and "McNemar p 0.062" in text
    write_comparison(best, reference, tmp_path)
    found = json.loads((tmp_path / "compare" / "comparison.json").read_text())["paired"]
    assert found["val"]["difference"] == 5.0 and found["test"]["low"] > 0
