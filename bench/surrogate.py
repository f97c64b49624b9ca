"""A surrogate benchmark fitted on a trained table (`table.py`): a candidate's expected accuracy without
training it, and the run-to-run noise of the validation accuracy a search sees.

What is modelled: each candidate's accuracy pooled over its validation and test images (3,140 on the
quickstart's split, against 1,140 for validation alone, so the fitted target is less noisy; nothing here
chooses a network, so the test images may serve). The model: ridge regression on log2 FLOPs and log2
params, optionally with one indicator per architectural fact of the concrete spec (each stem or branch
setting, each module's set of branches, the head's dropout: the choices' main effects); which features
and which penalty, by 8-fold cross-validated error. `fit` reports the held-out rank correlation
(k-fold Spearman ρ, each fold predicted by a model fitted without it) and the noise: the standard
deviation of one run's validation accuracy around its candidate's mean, from the table's re-runs with
another seed. A strategy sees mean + noise; its pick is judged by the mean.

Candidates are counted by `sandbox.model.flops.PartCounts` (each part's count cached), which makes the
thousands of draws of a strategy comparison affordable; `check_counts` proves it equal to `count` on
the table before it is used.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from sandbox.model.flops import PartCounts, count
from sandbox.spec.load import validate

NOT_ARCHITECTURE = ("name", "plugins", "train", "data", "search", "description")
PENALTIES = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


class TableError(Exception):
    """A table that cannot calibrate a surrogate (missing, malformed, too small)."""


def read_table(path: Path) -> list[dict[str, Any]]:
    """The table's records; a missing or malformed file is one TableError naming it."""
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise TableError(f"--surrogate: cannot read {path}: {err.strerror or err}") from err
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not {"spec", "final_val", "seed", "index"} <= set(record):
                raise ValueError("a record needs spec, final_val, seed and index")
        except ValueError as err:
            raise TableError(f"--surrogate: {path}, line {number}: not a table record ({err})") from err
        records.append(record)
    if len({r["index"] for r in records}) < 10:
        raise TableError(f"--surrogate: {path} holds {len(records)} records; a surrogate needs 10 candidates or more")
    return records


def facts(raw: Mapping[str, Any]) -> set[str]:
    """The architectural facts of a concrete spec, as strings: every leaf value at its path, except that a
    module's branches are named by what they are, not by their position (a dropped branch shifts the rest)."""
    found: set[str] = set()

    def walk(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key == "branches" and isinstance(item, list):
                    kinds = sorted(json.dumps(branch, sort_keys=True) for branch in item)
                    found.update(f"{path}.branch={kind}" for kind in kinds)
                    found.add(f"{path}.branches={'|'.join(kinds)}")
                else:
                    walk(item, f"{path}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")
        else:
            found.add(f"{path}={value}")

    for key, value in raw.items():
        if key not in NOT_ARCHITECTURE:
            walk(value, key)
    return found


@dataclass
class Surrogate:
    """The fitted model: `mean(raw, flops, params)` in accuracy (0-1), and `noise` (one run's SD, 0-1)."""

    vocabulary: list[str]
    center: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    intercept: float
    noise: float
    penalty: float
    candidates: int
    rho: float  # held-out Spearman ρ (k-fold)
    rho_flops: float  # the same for log2 FLOPs alone, for comparison
    residual: float  # held-out RMSE of the mean, 0-1

    def mean(self, raw: Mapping[str, Any], flops: int, params: int) -> float:
        return float((_row(raw, flops, params, self.vocabulary) - self.center) @ self.weights + self.intercept)

    def describe(self) -> str:
        return (
            f"ridge on log2 FLOPs, log2 params and {len(self.vocabulary)} architectural indicators, penalty "
            f"{self.penalty:g}, fitted on {self.candidates} candidates: held-out Spearman ρ {self.rho:.2f} "
            f"(log2 FLOPs alone {self.rho_flops:.2f}), held-out RMSE {100 * self.residual:.2f} points; "
            f"run-to-run noise SD {100 * self.noise:.2f} points"
        )


def _row(raw: Mapping[str, Any], flops: int, params: int, vocabulary: Sequence[str]) -> np.ndarray:
    present = facts(raw)
    return np.array([math.log2(flops), math.log2(params), *(fact in present for fact in vocabulary)], dtype=float)


def _design(records: Sequence[Mapping[str, Any]], vocabulary: Sequence[str]) -> np.ndarray:
    return np.stack([_row(r["spec"], r["flops"], r["params_count"], vocabulary) for r in records])


def _ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Standardized ridge: (center, scale-folded weights, scale, intercept)."""
    center = x.mean(0)
    scale = x.std(0)
    scale[scale == 0] = 1.0
    z = (x - center) / scale
    weights = np.linalg.solve(z.T @ z + penalty * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return center, weights / scale, scale, float(y.mean())


def _held_out(x: np.ndarray, y: np.ndarray, penalty: float, folds: int, seed: int = 0) -> np.ndarray:
    """Each candidate's prediction by a model fitted on the other folds."""
    order = list(range(len(y)))
    random.Random(seed).shuffle(order)
    predicted = np.zeros(len(y))
    for fold in range(folds):
        test = order[fold::folds]
        train = [i for i in order if i not in set(test)]
        center, weights, _, intercept = _ridge(x[train], y[train], penalty)
        predicted[test] = (x[test] - center) @ weights + intercept
    return predicted


def run_noise(records: Sequence[Mapping[str, Any]]) -> tuple[float, int]:
    """One run's SD around its candidate's mean, from pairs of runs with two seeds, and the pair count."""
    by_index: dict[int, list[float]] = {}
    for record in records:
        by_index.setdefault(record["index"], []).append(record["final_val"])
    differences = [runs[0] - runs[1] for runs in by_index.values() if len(runs) == 2]
    if len(differences) < 2:
        raise TableError("--surrogate: the table holds fewer than 2 re-run pairs; its noise cannot be measured")
    return float(np.sqrt(np.mean(np.square(differences)) / 2)), len(differences)


def pooled(record: Mapping[str, Any]) -> float:
    """A run's accuracy over its validation and test images together (validation alone without records)."""
    correct = record.get("correct")
    if not isinstance(correct, Mapping) or "final_test" not in record:
        return float(record["final_val"])
    n_val, n_test = (int(str(correct[split]).partition(":")[0]) for split in ("val", "test"))
    return (record["final_val"] * n_val + record["final_test"] * n_test) / (n_val + n_test)


def fit(records: Sequence[Mapping[str, Any]], folds: int = 8) -> Surrogate:
    """The surrogate of a table: the first run of each candidate is its observation."""
    first_seed = min(r["seed"] for r in records)
    firsts = [r for r in records if r["seed"] == first_seed]
    counts: dict[str, int] = {}
    for record in firsts:
        for fact in facts(record["spec"]):
            counts[fact] = counts.get(fact, 0) + 1
    vocabulary = sorted(f for f, n in counts.items() if 2 <= n <= len(firsts) - 2)  # facts that vary
    x = _design(firsts, vocabulary)
    y = np.array([pooled(r) for r in firsts])
    columns = {"size": 2, "size and facts": x.shape[1]}  # the features a model may use: its first columns
    errors = {
        (name, p): float(np.mean((_held_out(x[:, :width], y, p, folds) - y) ** 2))
        for name, width in columns.items()
        for p in PENALTIES
    }
    name, penalty = min(errors, key=errors.__getitem__)
    width = columns[name]
    rho = float(spearmanr(_held_out(x[:, :width], y, penalty, folds), y).statistic)
    rho_flops = float(spearmanr(_held_out(x[:, :1], y, 1.0, folds), y).statistic)
    center, weights, scale, intercept = _ridge(x[:, :width], y, penalty)
    noise, _ = run_noise(records)
    return Surrogate(
        vocabulary[: width - 2], center, scale, weights, intercept, noise, penalty, len(firsts), rho, rho_flops,
        math.sqrt(errors[name, penalty]),
    )  # fmt: skip


def check_counts(fast: PartCounts, records: Sequence[Mapping[str, Any]], base: Path) -> None:
    """Refuse to go on unless the cached count equals `count` on every candidate of the table."""
    for record in records:
        spec = validate(record["spec"], base=base)
        mine, theirs = fast(spec), count(spec)
        if (mine.flops, mine.params) != (theirs.flops, theirs.params):
            raise SystemExit(
                f"PartCounts disagrees with count on candidate {record['index']}: {mine.flops:,} FLOPs / "
                f"{mine.params:,} params against {theirs.flops:,} / {theirs.params:,}"
            )
