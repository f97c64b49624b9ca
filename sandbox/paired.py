"""Per-image correctness records and the paired statistics they allow.

Every trained candidate keeps which validation and test images it classified correctly, one bit an
image in split order, packed and base64-encoded (a few hundred bytes). Two candidates measured on the
same split then differ by a *paired* amount: only the images one got right and the other wrong count,
so a difference has about half the error of one absolute accuracy. `mcnemar` tests it exactly,
`paired_interval` gives the difference in points with a 95% interval.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest, norm

LEVEL = 0.05  # the significance level of every "tied with the best" mark


def pack(correct: np.ndarray) -> str:
    """Bits of a boolean vector, packed and base64-encoded, prefixed with its length."""
    bits = np.asarray(correct, dtype=bool)
    return f"{len(bits)}:" + base64.b64encode(np.packbits(bits).tobytes()).decode("ascii")


def unpack(record: str) -> np.ndarray:
    """The boolean vector `pack` encoded."""
    length, _, data = record.partition(":")
    bits = np.unpackbits(np.frombuffer(base64.b64decode(data), dtype=np.uint8))
    return bits[: int(length)].astype(bool)


@dataclass(frozen=True)
class Paired:
    """How candidate a compares with b on the same images."""

    difference: float  # accuracy of a minus b, in points
    low: float  # the 95% interval of the difference, in points
    high: float
    a_only: int  # images a got right and b wrong
    b_only: int
    p_value: float  # McNemar's exact test (two-sided binomial on the discordant images)

    @property
    def tied(self) -> bool:
        return self.p_value >= LEVEL


def mcnemar(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: under no difference, each discordant image is a coin flip."""
    discordant = a_only + b_only
    return 1.0 if discordant == 0 else float(binomtest(a_only, discordant, 0.5).pvalue)


def compare(a: np.ndarray, b: np.ndarray) -> Paired:
    """Candidate a against b on the same split (boolean vectors of equal length)."""
    if len(a) != len(b):
        raise ValueError(f"per-image records of different splits ({len(a)} and {len(b)} images)")
    n = len(a)
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    diff = (a_only - b_only) / n
    # The paired difference's standard error (as for matched proportions), with a 95% normal interval.
    se = math.sqrt(max((a_only + b_only) / n - diff**2, 0.0) / n)
    z = float(norm.ppf(0.975))
    return Paired(100 * diff, 100 * (diff - z * se), 100 * (diff + z * se), a_only, b_only, mcnemar(a_only, b_only))
