"""`search_vs_random.py --surrogate TABLE`: search strategies compared on a surrogate, hundreds of paired seeds.

Each strategy runs the project's own search code (its Optuna sampler seeded as a search seeds it,
random sampling's draws inside the FLOP band (`sandbox.search.band`), the `Objective` that counts,
rejects a model-based sampler's candidates outside the band and answers repeats, and `--trials`
counted as `sandbox.search.ceiling` counts them) with one change: training a candidate
returns a draw from the surrogate (`surrogate.py`): its mean plus the run-to-run noise. A strategy
picks the candidate with the best observed validation accuracy among the trainings its compute pays
for (E epochs / epochs per candidate); the pick is judged by its surrogate *mean*, so the figure is
what the pick is worth, not how lucky its one run was. Seeds are paired: seed k of every strategy
has the same noise for the same candidate (common random numbers) and is compared with seed k of
`random`. Per strategy and budget it prints the mean gain over random with a 95% interval, P(better)
(the share of seeds where the pick is better, ties halved) and a two-sided Mann-Whitney p.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import random
import statistics
import tempfile
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import optuna
from scipy.stats import mannwhitneyu
from search_efficiency import make_run
from surrogate import Surrogate, TableError, check_counts, fit, read_table

import sandbox.search.objective as objective_module
from sandbox.model.flops import PartCounts
from sandbox.search.band import band_draws
from sandbox.search.ceiling import CeilingReached, SharedStudy
from sandbox.search.config import make_sampler
from sandbox.search.objective import Objective
from sandbox.search.record import DRAWS
from sandbox.search.run import SearchRun
from sandbox.search.sampler import TrialSeeded
from sandbox.spec.load import Spec
from sandbox.train.device import set_cpu_threads

# Each strategy: overrides of the space's `search:` section. The surrogate has no learning curves, so
# every strategy trains its candidates to the end (pruner none).
STRATEGIES: dict[str, dict[str, Any]] = {
    "random": {"sampler": "random", "floor": None},
    "default": {},  # the space's search as shipped
    "tpe": {"sampler": "tpe", "startup_trials": 5, "floor": None},  # the quickstart's search before the band
    "band-0.75": {"sampler": "random", "floor": 0.75},
    "band-0.85": {"sampler": "random", "floor": 0.85},
    "band-0.9": {"sampler": "random", "floor": 0.9},
    "tpe-band-0.75": {"sampler": "tpe", "startup_trials": 5, "floor": 0.75},
    "tpe-band-0.85": {"sampler": "tpe", "startup_trials": 5, "floor": 0.85},
}
DEFAULT_STRATEGIES = ["random", "default", "tpe", "band-0.75", "band-0.85", "band-0.9", "tpe-band-0.85"]

_state: dict[str, Any] = {}  # what the worker processes inherit: the surrogate, the counter, the space


class SurrogateTraining:
    """Stands in for `train_run`: the candidate's surrogate mean plus noise fixed by (seed, candidate)."""

    def __init__(self, surrogate: Surrogate, counter: PartCounts, seed: int) -> None:
        self.surrogate, self.counter, self.seed = surrogate, counter, seed
        self.trained: list[tuple[float, float]] = []  # (observed, mean) per training, in order

    def __call__(self, spec: Spec, *, epochs: int | None = None, on_epoch: Any = None, **_: Any) -> dict[str, Any]:
        counts = self.counter(spec)
        mean = self.surrogate.mean(spec.raw, counts.flops, counts.params)
        key = json.dumps({k: v for k, v in spec.raw.items() if k != "name"}, sort_keys=True)
        observed = mean + random.Random(f"{self.seed}:{key}").gauss(0.0, self.surrogate.noise)
        self.trained.append((observed, mean))
        epochs = epochs or spec.train.epochs
        if on_epoch is not None:
            on_epoch(epochs - 1, {"val_accuracy": observed})
        return {"val_accuracy": observed, "test_accuracy": mean, "seed": self.seed, "seconds": 0.0,
                "train_images_per_second": 0.0}  # fmt: skip


def strategy_run(name: str, seed: int, workdir: Path) -> SearchRun:
    run = make_run(_state["space"], workdir / f"{name}-{seed}", seed=seed, workers=1)
    config = replace(run.config, pruner="none", **STRATEGIES[name])
    config.check_band()
    return replace(run, config=config)


def simulate(task: tuple[str, int, int]) -> tuple[str, int, list[tuple[float, float]], int]:
    """One strategy with one seed: its trainings in order, (observed, mean) each, and its draws."""
    name, seed, trainings = task
    with tempfile.TemporaryDirectory() as tmp:
        run = strategy_run(name, seed, Path(tmp))
        storage = optuna.storages.InMemoryStorage()
        optuna.create_study(storage=storage, study_name=run.name, directions=run.config.directions)
        sampler = TrialSeeded(partial(make_sampler, run.config), run.config.seed)
        draw = band_draws(run, _state["counter"])  # random sampling draws inside the band, as a search does
        study = SharedStudy(run.name, storage, sampler, optuna.pruners.NopPruner(), ceiling=trainings, draw=draw)
        training = SurrogateTraining(_state["surrogate"], _state["counter"], seed)
        with contextlib.suppress(CeilingReached):  # --trials trained, or the draws ran out
            study.optimize(Objective(run, "cpu", train=training), catch=(Exception,))
        drawn = sum(trial.user_attrs.get(DRAWS, 1) for trial in study.get_trials(deepcopy=False))
        return name, seed, training.trained, drawn


def pick_score(trained: list[tuple[float, float]], count: int) -> float:
    """The mean of the best observed among the first `count` trainings (NaN: none trained)."""
    first = trained[:count]
    return max(first)[1] if first else math.nan


def summarize(scores: dict[str, list[float]], baseline: str = "random") -> list[str]:
    """A line per strategy: its mean pick, and against the baseline the paired gain, P(better), MW p."""
    base = scores[baseline]
    lines = [
        f"  {'strategy':<16} {'pick (mean)':>11} {'gain over random, 95% interval':>34} {'P(better)':>9} {'MW p':>8}"
    ]
    for name, values in scores.items():
        pairs = [(a, b) for a, b in zip(values, base, strict=True) if not (math.isnan(a) or math.isnan(b))]
        gains = [100 * (a - b) for a, b in pairs]
        mean = statistics.fmean(gains)
        half = 1.96 * statistics.stdev(gains) / math.sqrt(len(gains)) if len(gains) > 1 else math.nan
        better = sum((g > 0) + 0.5 * (g == 0) for g in gains) / len(gains)
        p = 1.0 if name == baseline else float(mannwhitneyu([a for a, _ in pairs], [b for _, b in pairs]).pvalue)
        pick = 100 * statistics.fmean(a for a, _ in pairs)
        interval = "" if name == baseline else f"{mean:+.3f} ({mean - half:+.3f} to {mean + half:+.3f})"
        better_text = "" if name == baseline else f"{better:.2f}"
        p_text = "" if name == baseline else f"{p:.2g}"
        lines.append(f"  {name:<16} {pick:>10.2f}% {interval:>34} {better_text:>9} {p_text:>8}")
    return lines


def split_sizes(record: dict[str, Any]) -> dict[str, int]:
    """The validation and test images a table's runs were measured on (from their per-image records)."""
    correct = record.get("correct") or {}
    sizes = {split: int(str(correct[split]).partition(":")[0]) for split in ("val", "test") if split in correct}
    return {f"{split}_images": size for split, size in sizes.items()}


def main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    names = args.strategies or DEFAULT_STRATEGIES
    unknown = set(names) - set(STRATEGIES)
    if unknown:
        parser.error(f"--strategies: unknown {', '.join(sorted(unknown))} (known: {', '.join(STRATEGIES)})")
    names = ["random", *[n for n in names if n != "random"]]
    seeds = 500 if args.seeds is None else args.seeds
    if seeds < 2:
        parser.error("--seeds: a paired comparison needs at least 2 seeds")
    if args.procs < 1 or any(e < 1 for e in args.epochs):
        parser.error("--procs and --epochs must be positive")
    try:
        records = read_table(args.surrogate)
        surrogate = fit(records)
    except TableError as err:
        parser.error(str(err))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    set_cpu_threads(1)
    began = time.perf_counter()
    counter = PartCounts()
    check_counts(counter, records, args.space.resolve().parent)
    objective_module.count = counter  # draws are counted part by part (proved equal to `count` above)
    _state.update(surrogate=surrogate, counter=counter, space=args.space)
    from sandbox.spec.load import read_yaml
    from sandbox.spec.recipe import train_config
    from sandbox.spec.search import search_config

    space = read_yaml(args.space)
    per_candidate = search_config(space.get("search") or {}).epochs or train_config(space.get("train") or {}).epochs
    trainings = max(args.epochs) // per_candidate
    print(f"surrogate: {surrogate.describe()}")
    print(
        f"space {args.space.name}: {per_candidate} epochs per candidate; seeds {args.seed_offset}.."
        f"{args.seed_offset + seeds - 1}; budgets {', '.join(map(str, args.epochs))} epochs; {args.procs} processes"
    )
    tasks = [(name, args.seed_offset + k, trainings) for k in range(seeds) for name in names]
    results: dict[str, dict[int, tuple[list[tuple[float, float]], int]]] = {name: {} for name in names}
    with multiprocessing.get_context("fork").Pool(args.procs) as pool:
        for name, seed, trained, draws in pool.imap_unordered(simulate, tasks, chunksize=4):
            results[name][seed] = (trained, draws)
    seconds = time.perf_counter() - began
    order = [args.seed_offset + k for k in range(seeds)]
    figures: dict[str, dict[str, list[float]]] = {name: {"score": [], "epochs": [], "seed": []} for name in names}
    for epochs in args.epochs:
        print(f"\n{epochs} epochs ({epochs // per_candidate} trainings per strategy and seed), {seeds} paired seeds:")
        scores = {name: [pick_score(results[name][s][0], epochs // per_candidate) for s in order] for name in names}
        for line in summarize(scores):
            print(line)
        for name in names:
            figures[name]["score"] += scores[name]
            figures[name]["epochs"] += [epochs] * seeds
            figures[name]["seed"] += order
    draws = {name: statistics.fmean(results[name][s][1] for s in order) for name in names}
    print("\ndraws per strategy and seed (trained or not): " + ", ".join(f"{n} {d:.0f}" for n, d in draws.items()))
    print(f"{len(tasks)} simulated searches in {seconds:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "surrogate": surrogate.describe(),
                    "table": str(args.surrogate),
                    "per_candidate_epochs": per_candidate,
                    "noise": surrogate.noise,  # one run's validation accuracy around its mean, 0-1
                    **split_sizes(records[0]),
                    "seconds": seconds,
                    "strategies": {n: {**figures[n], "overrides": STRATEGIES[n]} for n in names},
                },
                indent=1,
            )
        )
    return 0
