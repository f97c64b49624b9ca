"""Per-image records: packing round-trips, and the paired comparison counts only discordant images."""

from __future__ import annotations

import numpy as np
import pytest

from sandbox.paired import compare, mcnemar, pack, unpack


@pytest.mark.parametrize("length", [1, 7, 8, 9, 1140, 2000])
def test_pack_round_trips_any_length(length: int) -> None:
    bits = np.random.default_rng(length).random(length) < 0.9
    record = pack(bits)
    assert np.array_equal(unpack(record), bits)
    assert len(record) < length // 8 * 4 / 3 + 16  # bit-packed: a few hundred bytes for the sample's splits


def test_compare_counts_discordant_images_and_brackets_the_difference() -> None:
    a = np.array([True] * 90 + [False] * 10)
    b = a.copy()
    b[:6] = False  # a right, b wrong on 6 images
    b[95:97] = True  # b right, a wrong on 2
    paired = compare(a, b)
    assert (paired.a_only, paired.b_only) == (6, 2)
    assert paired.difference == pytest.approx(4.0)
    assert paired.low < 4.0 < paired.high
    assert paired.tied  # 6 against 2 discordant images is no evidence (p ≈ 0.29)


def test_a_clear_difference_is_not_a_tie() -> None:
    assert mcnemar(40, 5) < 0.001
    assert mcnemar(0, 0) == 1.0
    a = np.ones(1000, dtype=bool)
    b = a.copy()
    b[:60] = False
    paired = compare(a, b)
    assert not paired.tied and paired.low > 0


def test_records_of_different_splits_are_refused() -> None:
    with pytest.raises(ValueError, match="different splits"):
        compare(np.ones(3, dtype=bool), np.ones(4, dtype=bool))
