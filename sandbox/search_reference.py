"""The search's yardstick: a reference network (`search.reference`) trained as the best candidate was.

"Does the search beat my baseline?" is only a fair question when both networks train the same way,
so the reference takes the best candidate's `train:` and `data:` sections, epochs and seed, and the
comparison prints validation accuracy (what the search chose by) beside test accuracy (reported
only, never used to choose). The reference's run directory is reused when a finished search is
rerun with the same recipe, so resuming costs no retraining.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from optuna.trial import FrozenTrial

from sandbox.errors import SandboxError, SpecError
from sandbox.rundir import METRICS_FILE, SPEC_FILE, concrete_raw, read_metrics
from sandbox.space import primitives
from sandbox.spec import Spec, load_spec, read_yaml, validate
from sandbox.train import train_run
from sandbox.train_config import train_config

REFERENCE_DIR = "reference"


def reference_path(reference: str, base: Path) -> Path:
    """The reference spec's file (relative to the search spec's folder), checked before any training."""
    path = (base / reference).resolve()
    if not path.is_file():
        raise SpecError("search.reference", f"no such spec file: {path}")
    raw = read_yaml(path)
    if primitives(raw):
        raise SpecError("search.reference", f"{path} is a search space; the reference must be one network")
    load_spec(path)  # its own errors name their keys
    return path


def reference_spec(path: Path, best: FrozenTrial) -> Spec:
    """The reference network with the best candidate's training recipe and data."""
    recipe = yaml.safe_load(best.user_attrs["spec"])
    raw = read_yaml(path)
    for section in ("train", "data"):
        raw.pop(section, None)
        if section in recipe:
            raw[section] = recipe[section]
    return validate(raw, base=path.parent, source=path)


def train_reference(
    spec: Spec,
    run_dir: Path,
    *,
    epochs: int | None,
    seed: int,
    device: str,
    data_dir: Path | None,
) -> dict[str, Any]:
    """Train the reference into `run_dir/reference/`, or reuse it when it was trained the same way."""
    out_dir = run_dir / REFERENCE_DIR
    if _trained_alike(out_dir, spec, epochs, seed):
        return read_metrics(out_dir)
    print(f"training the reference {spec.name!r} as the best candidate was trained ...", flush=True)
    return train_run(
        spec, out_dir=out_dir, epochs=epochs, device=device, seed=seed, data_dir=data_dir, progress=sys.stderr.isatty()
    )


def _trained_alike(out_dir: Path, spec: Spec, epochs: int | None, seed: int) -> bool:
    if not (out_dir / METRICS_FILE).is_file():
        return False
    try:
        metrics = read_metrics(out_dir)
        same_spec = read_yaml(out_dir / SPEC_FILE) == concrete_raw(spec)
    except SandboxError:
        return False
    wanted = train_config(spec.train).with_overrides(epochs=epochs, seed=seed)
    return same_spec and metrics.get("seed") == wanted.seed and metrics.get("epochs") == wanted.epochs


def format_comparison(best: FrozenTrial, reference: Mapping[str, Any], path: Path) -> str:
    """Best candidate against the reference: FLOPs, validation and test accuracy, and the differences."""
    best_val, best_test = best.values[0], best.user_attrs.get("test_accuracy")
    ref_val, ref_test = reference["val_accuracy"], reference["test_accuracy"]
    best_flops, ref_flops = best.user_attrs["flops"], reference["flops"]
    lines = [
        f"reference: {path.name}, trained as the best candidate was (same recipe, epochs and seed)",
        f"{'':<16} {'MFLOPs':>8} {'val acc':>8} {'test acc':>8}",
        f"{f'best (trial {best.number})':<16} {best_flops / 1e6:>8.2f} {best_val:>8.2%} {_percent(best_test):>8}",
        f"{'reference':<16} {ref_flops / 1e6:>8.2f} {ref_val:>8.2%} {ref_test:>8.2%}",
    ]
    verdict = (
        f"best vs reference: {best_flops / ref_flops:.0%} of its FLOPs, val {100 * (best_val - ref_val):+.2f} points"
    )
    if best_test is not None:
        verdict += f", test {100 * (best_test - ref_test):+.2f} points"
    return "\n".join([*lines, verdict])


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"
