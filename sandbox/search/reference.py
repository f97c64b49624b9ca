"""The search's yardstick: a reference network (`search.reference`) trained as the best candidate was.

"Does the search beat my baseline?" is only a fair question when both networks train the same way,
so the reference takes the best candidate's `train:` and `data:` sections and epochs. One training
run is a noisy measurement (on the bundled sample two seeds of one network differ by a point), so
`search.reference_seeds: N` trains both networks with N seeds (the search's seed and the next ones;
the best's trial is its run for the seed and epochs it trained with) and compares the means.
Validation accuracy is what the search chose by; test accuracy is reported only, never used to
choose. Every run keeps which images it got right, so the two networks also compare *paired*, on
the same images (`sandbox.paired`): the difference in points with its 95% interval and McNemar's p,
on validation and on test, the seeds' pairs pooled. Each run lives in
`RUN_DIR/compare/<network>-seed-<seed>/` and is reused when a finished search is rerun with the same
recipe, so resuming costs no retraining.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from optuna.trial import FrozenTrial

from sandbox.errors import SandboxError, SpecError
from sandbox.paired import Paired, compare, unpack
from sandbox.runs import METRICS_FILE, SPEC_FILE, atomic_write, concrete_raw, read_metrics
from sandbox.search.record import EPOCHS_TRAINED, FLOPS, SEED, SPEC, TEST_ACCURACY, correct
from sandbox.spec.load import Spec, load_spec, read_yaml, validate
from sandbox.spec.primitives import primitives
from sandbox.spec.recipe import TrainConfig
from sandbox.train.loop import train_run

COMPARE_DIR = "compare"
COMPARISON_FILE = "comparison.json"


@dataclass(frozen=True)
class Measured:
    """One network's runs in the comparison, a value per seed."""

    name: str
    flops: int
    seeds: tuple[int, ...]
    val: tuple[float, ...]
    test: tuple[float, ...]
    correct: tuple[Mapping[str, str], ...] = ()  # per seed, {"val": packed, "test": packed} (`sandbox.paired`)


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


def reference_spec(path: Path, best: Spec) -> Spec:
    """The reference network with the best candidate's training recipe and data."""
    raw = read_yaml(path)
    raw.update(train=best.raw.get("train") or {}, data=best.raw.get("data") or {})
    return validate(raw, base=path.parent, source=path)


def best_spec(best: FrozenTrial, base: Path) -> Spec:
    """The best candidate's concrete spec, as its trial recorded it."""
    return validate(yaml.safe_load(best.user_attrs[SPEC]), base=base)


@dataclass(frozen=True)
class ComparisonRuns:
    """Where and how the comparison's runs train: `run_dir/compare/<label>-seed-<seed>/`, reused
    when a run there was trained the same way."""

    run_dir: Path
    epochs: int | None
    device: str
    data_dir: Path | None

    def recipe(self, spec: Spec, seed: int) -> TrainConfig:
        """How `spec` trains with `seed` in this comparison."""
        return spec.train.with_overrides(epochs=self.epochs, seed=seed)

    def train(self, spec: Spec, label: str, seed: int) -> dict[str, Any]:
        out_dir = self.run_dir / COMPARE_DIR / f"{label}-seed-{seed}"
        if _trained_alike(out_dir, spec, self.recipe(spec, seed)):
            return read_metrics(out_dir)
        print(f"training the {label} ({spec.name!r}) with seed {seed} for the comparison ...", flush=True)
        return train_run(
            spec,
            out_dir=out_dir,
            epochs=self.epochs,
            device=self.device,
            seed=seed,
            data_dir=self.data_dir,
            progress=sys.stderr.isatty(),
        )


def measure_best(best: FrozenTrial, spec: Spec, seeds: Sequence[int], runs: ComparisonRuns) -> Measured:
    """The best candidate with each seed. Its trial is the first seed's run when it trained with that
    seed and as many epochs, as every trial of a study does (a rerun with another seed or epochs is
    refused, `sandbox.search.storage`); every other seed is trained, or reused."""
    wanted = runs.recipe(spec, seeds[0])
    attrs = best.user_attrs
    trial_is_first = attrs.get(SEED) == wanted.seed and attrs.get(EPOCHS_TRAINED) == wanted.epochs
    done = [runs.train(spec, "best", seed) for seed in (seeds[1:] if trial_is_first else seeds)]
    if trial_is_first:
        recorded = {split: attrs[correct(split)] for split in ("val", "test") if correct(split) in attrs}
        done.insert(0, {"val_accuracy": best.values[0], "test_accuracy": attrs[TEST_ACCURACY], "correct": recorded})
    return _measured(f"best (trial {best.number})", int(attrs[FLOPS]), seeds, done)


def measure_reference(spec: Spec, seeds: Sequence[int], runs: ComparisonRuns) -> Measured:
    """The reference, trained (or reused) once per seed."""
    done = [runs.train(spec, "reference", seed) for seed in seeds]
    return _measured("reference", int(done[0]["flops"]), seeds, done)


def _measured(name: str, flops: int, seeds: Sequence[int], done: Sequence[Mapping[str, Any]]) -> Measured:
    return Measured(
        name=name,
        flops=flops,
        seeds=tuple(seeds),
        val=tuple(float(m["val_accuracy"]) for m in done),
        test=tuple(float(m["test_accuracy"]) for m in done),
        correct=tuple(dict(m.get("correct") or {}) for m in done),
    )


def paired(best: Measured, reference: Measured, split: str) -> Paired | None:
    """Best against reference on `split`'s images, each seed's pair of runs compared image by image and
    the pairs pooled; None when a run kept no per-image record (one trained before they existed)."""
    pairs = list(zip(best.correct, reference.correct, strict=False))
    if len(pairs) != len(best.seeds) or any(split not in a or split not in b for a, b in pairs):
        return None
    mine = [unpack(a[split]) for a, _ in pairs]
    theirs = [unpack(b[split]) for _, b in pairs]
    if any(len(a) != len(b) for a, b in zip(mine, theirs, strict=True)):
        return None
    return compare(np.concatenate(mine), np.concatenate(theirs))


def _trained_alike(out_dir: Path, spec: Spec, wanted: TrainConfig) -> bool:
    if not (out_dir / METRICS_FILE).is_file():
        return False
    try:
        metrics = read_metrics(out_dir)
        stored, raw = read_yaml(out_dir / SPEC_FILE), concrete_raw(spec)
    except SandboxError:
        return False
    if "normalize" not in raw:  # training states the dataset's own statistics, which an unset key means
        stored.pop("normalize", None)
    same_spec = stored == raw
    return same_spec and metrics.get("seed") == wanted.seed and metrics.get("epochs") == wanted.epochs


def write_comparison(best: Measured, reference: Measured, run_dir: Path) -> None:
    """Both networks' values per seed, as JSON, for whoever reports the comparison."""
    path = run_dir / COMPARE_DIR / COMPARISON_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    differences = {split: paired(best, reference, split) for split in ("val", "test")}
    found = {split: asdict(p) for split, p in differences.items() if p is not None}
    document = {"best": asdict(best), "reference": asdict(reference), "paired": found}
    atomic_write(path, lambda temporary: temporary.write_text(json.dumps(document, indent=2) + "\n"))


def format_comparison(best: Measured, reference: Measured, path: Path) -> str:
    """Best candidate against the reference: FLOPs, validation and test accuracy, and the differences."""
    seeds = ", ".join(map(str, reference.seeds))
    several = len(reference.seeds) > 1
    width, column = (24, " mean (min-max)") if several else (9, "")
    rows = [
        f"{'':<16} {'MFLOPs':>8}  {'val acc' + column:<{width}} {'test acc' + column}",
        *(
            f"{net.name:<16} {net.flops / 1e6:>8.2f}  {_spread(net.val):<{width}} {_spread(net.test)}"
            for net in (best, reference)
        ),
    ]
    title = f"reference: {path.name}, trained as the best candidate was (same recipe and epochs)"
    title += f"; seed{'s' * several} {seeds}"
    verdict = (
        f"best vs reference: {best.flops / reference.flops:.0%} of its FLOPs, "
        f"val {_difference(best.val, reference.val)}, test {_difference(best.test, reference.test)}"
    )
    if several:
        verdict += f" (means over {len(reference.seeds)} seeds)"
    lines = [title, *rows, verdict]
    for split, words in (("val", "validation"), ("test", "test")):
        difference = paired(best, reference, split)
        if difference is not None:
            lines.append(f"paired on the same {words} images{' (seeds pooled)' * several}: {paired_text(difference)}")
    return "\n".join(lines)


def paired_text(difference: Paired) -> str:
    """'+0.61 points (95% interval -0.20 to +1.42), McNemar p 0.14'."""
    return (
        f"{difference.difference:+.2f} points (95% interval {difference.low:+.2f} to {difference.high:+.2f}), "
        f"McNemar p {difference.p_value:.2g}"
    )


def _spread(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2%}"
    return f"{statistics.fmean(values):.2%} ({min(values):.2%}-{max(values):.2%})"


def _difference(best: Sequence[float], reference: Sequence[float]) -> str:
    return f"{100 * (statistics.fmean(best) - statistics.fmean(reference)):+.2f} points"
