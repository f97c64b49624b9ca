"""Search efficiency: what pruning saves, and whether each sampler learns the FLOP budget.

    python bench/search_efficiency.py [--space search_spaces/quickstart.yaml] [--trials 16]

Part 1 runs the space twice with the same seed and trial count, once with the median pruner and
once without, and prints epochs trained, wall time and best validation accuracy of each.
Part 2 runs TPE, GP, NSGA-II and random sampling on the same space under a budget that about half
of it exceeds, scoring feasible candidates by a stand-in that grows with FLOPs (as accuracy tends
to), so samplers are pulled towards the budget's edge; it prints the share of over-budget
proposals in the first and second half of each study. No training happens in part 2: the
samplers see the same COMPLETE-with-constraint records a real search writes.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna

from sandbox.model.flops import count
from sandbox.search.objective import Objective
from sandbox.search.record import EPOCHS_TRAINED, OVER_BUDGET
from sandbox.search.results import is_result, ranked
from sandbox.search.run import SearchRun
from sandbox.search.storage import open_study
from sandbox.search.workers import run_workers
from sandbox.space.bounds import candidate_flops, random_suggest, space_flops
from sandbox.spec.load import read_yaml
from sandbox.spec.primitives import sample
from sandbox.spec.search import search_config


def make_run(space_path: Path, out: Path, **overrides: Any) -> SearchRun:
    space = read_yaml(space_path)
    config = replace(search_config(space.get("search") or {}), **overrides)
    return SearchRun(
        space, space_path.resolve().parent, str(space.get("name")), config, out, f"sqlite:///{out}/study.db"
    )


def pruning(space_path: Path, trials: int, workdir: Path) -> None:
    print(f"== pruning: {space_path}, {trials} trials, same seed")
    rows = {}
    for pruner in ("median", "none"):
        run = make_run(space_path, workdir / f"prune-{pruner}", pruner=pruner, trials=trials, workers=1)
        start = time.perf_counter()
        run_workers(run)
        seconds = time.perf_counter() - start
        trials_ = open_study(run).get_trials(deepcopy=False)
        epochs = sum(t.user_attrs.get(EPOCHS_TRAINED, 0) for t in trials_)
        best = ranked(trials_)[0].values[0]
        rows[pruner] = (epochs, seconds, best)
        print(f"  pruner {pruner:<6}: {epochs:4d} epochs trained, {seconds:7.1f} s, best val accuracy {best:.4f}")
    (e1, s1, b1), (e0, s0, b0) = rows["median"], rows["none"]
    print(
        f"  pruning saved {1 - e1 / e0:.0%} of epochs and {1 - s1 / s0:.0%} of time; best accuracy "
        f"{(b1 - b0) * 100:+.2f} points"
    )


def budget_learning(space_path: Path, trials: int, workdir: Path) -> None:
    space = read_yaml(space_path)
    base = space_path.resolve().parent
    bounds = space_flops(space, base, None, samples=32)
    budget = median_flops(space, base)
    print(
        f"== budget learning: budget {budget / 1e6:.2f} MFLOPs (median of random candidates; space "
        f"{bounds.smallest / 1e6:.2f}-{bounds.largest / 1e6:.2f} MFLOPs), {trials} trials per sampler"
    )
    scores = {
        # accuracy carries no hint of FLOPs: any fall in over-budget proposals is the constraint learnt
        "flat": lambda spec: 0.5 + 0.4 * (zlib.crc32(repr(spec.raw).encode()) % 1000) / 1000,
        # accuracy grows with FLOPs, as it tends to: the best region is the budget's edge
        "pull": lambda spec: 0.5 + 0.4 * (count(spec).flops / budget) ** 0.5,
    }
    for label, score in scores.items():
        print(f"  stand-in accuracy '{label}'")
        for sampler in ("random", "tpe", "gp", "nsga2"):
            run = make_run(space_path, workdir / f"budget-{label}-{sampler}", sampler=sampler, budget=budget)
            study = open_study(run)

            def stand_in(spec: Any, score=score, **_: Any) -> dict[str, float]:
                return {
                    "val_accuracy": score(spec),
                    "test_accuracy": 0.0,
                    "seed": 0,
                    "seconds": 0.0,
                    "train_images_per_second": 0.0,
                }

            study.optimize(Objective(run, "cpu", train=stand_in), n_trials=trials)
            over = [bool(t.user_attrs.get(OVER_BUDGET)) for t in study.get_trials(deepcopy=False)]
            half = len(over) // 2
            print(
                f"    {sampler:<7} over budget {sum(over[:half]) / half:4.0%} in the first half, "
                f"{sum(over[half:]) / (len(over) - half):4.0%} in the second "
                f"({sum(map(is_result, study.trials))} feasible of {len(over)})"
            )


def median_flops(space: dict[str, Any], base: Path, samples: int = 200) -> int:
    """The median FLOPs of random candidates: a budget that cuts the space about in half."""
    rng = random.Random(0)
    flops = [candidate_flops(sample(space, random_suggest(rng)), base) for _ in range(samples)]
    valid = sorted(f for f in flops if f is not None)
    return valid[len(valid) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", type=Path, default=Path("search_spaces/quickstart.yaml"))
    parser.add_argument("--trials", type=int, default=None, help="trials for the pruning comparison")
    parser.add_argument("--sampler-trials", type=int, default=60)
    parser.add_argument("--skip-pruning", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep the run directories here (default: a temporary folder)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = (args.keep or Path(tmp)).resolve()
        if not args.skip_pruning:
            trials = args.trials or search_config(read_yaml(args.space).get("search") or {}).trials
            pruning(args.space, trials, workdir)
        budget_learning(args.space, args.sampler_trials, workdir)


if __name__ == "__main__":
    main()
