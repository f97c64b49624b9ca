"""The one-shot strategy live, against the live runs of random sampling and the default search.

Runs `search.strategy: one-shot` on the quickstart space (its recipe, band and data; no reference
network), one seed per call of the search, one thread, and writes per seed the retrained pick's
validation accuracy, the test accuracy of that pick (never used to choose), the compute it spent
(supernet epochs, scoring, the top k's trainings; process CPU seconds) in the `--json` format of
`search_vs_random.py`, so that the picks compare with its live runs seed by seed:

    python bench/oneshot_live.py --only-seeds 0 --json runs/oneshot_live_0.json
    python bench/oneshot_live.py --compare bench/results/search_vs_random_live_band_random.json \\
        bench/results/search_vs_random_live_band_default.json runs/oneshot_live_*.json

`--compare` prints, per paired seed, each strategy's test accuracy of its pick and the gains over
`random`, then the mean gain with a 95% t interval over the seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import yaml
from scipy import stats

from sandbox.api import search
from sandbox.search.record import TEST_ACCURACY
from sandbox.train.device import set_cpu_threads

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "search_spaces" / "quickstart.yaml"


def one_shot_space(epochs: int, sampling: str, candidates: int, top_k: int) -> dict[str, Any]:
    raw = yaml.safe_load(SPACE.read_text())
    settings = {key: value for key, value in raw["search"].items() if key != "reference"}
    one_shot = {"epochs": epochs, "sampling": sampling, "candidates": candidates, "top_k": top_k}
    raw["search"] = {**settings, "strategy": "one-shot", "one_shot": one_shot}
    return raw


def cpu_seconds() -> float:
    """This process's and its finished children's CPU time (workers run as children)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_seed(seed: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    began, cpu = time.perf_counter(), cpu_seconds()
    space = one_shot_space(args.epochs, args.sampling, args.candidates, args.top_k)
    result = search(space, seed=seed, out=out / f"seed{seed}", workers=1, threads=1, say=lambda line: None)
    assert result.best_trial is not None, "no retrained candidate finished"
    stage = json.loads((out / f"seed{seed}" / "one_shot.json").read_text())
    return {
        "seed": seed,
        "best_val": float(result.best_trial.values[0]),
        "test_of_best": float(result.best_trial.user_attrs[TEST_ACCURACY]),
        "supernet_seconds": stage["train_seconds"],
        "score_seconds": stage["score_seconds"],
        "scored": len(stage["scored"]),
        "wall_seconds": time.perf_counter() - began,
        "cpu_seconds": cpu_seconds() - cpu,
    }


def compare(paths: list[Path]) -> None:
    tests: dict[str, dict[int, float]] = {}
    for path in paths:
        for name, runs in json.loads(path.read_text())["strategies"].items():
            for seed, test in zip(runs["seeds"], runs["test_of_best"], strict=True):
                tests.setdefault(name, {})[seed] = 100 * test
    names = [name for name in tests if name != "random"]
    seeds = sorted(set.intersection(*(set(found) for found in tests.values())))
    print("seed  " + "  ".join(f"{name + ' test %':>16}" for name in ["random", *names]))
    for seed in seeds:
        print(f"{seed:>4}  " + "  ".join(f"{tests[name][seed]:>16.2f}" for name in ["random", *names]))
    for name in names:
        gains = [tests[name][seed] - tests["random"][seed] for seed in seeds]
        per_seed = ", ".join(f"{g:+.2f}" for g in gains)
        print(f"{name}: test gain over random {mean_interval(gains)}; per seed {per_seed}")


def mean_interval(values: list[float]) -> str:
    """The mean with its 95% t interval, in points: `+0.12 (95% t interval -0.30 to +0.54, n 3)`."""
    mean = statistics.fmean(values)
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return f"{mean:+.2f} (95% t interval {mean - half:+.2f} to {mean + half:+.2f}, n {len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10, help="supernet epochs")
    parser.add_argument("--sampling", default="sandwich", choices=["uniform", "sandwich"])
    parser.add_argument("--candidates", type=int, default=64, help="subnets in the band scored")
    parser.add_argument("--top-k", type=int, default=3, help="subnets retrained stand-alone")
    parser.add_argument("--out", type=Path, default=Path("runs/oneshot_live"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--compare", type=Path, nargs="+", help="--json files of live runs to compare")
    args = parser.parse_args()
    if args.compare:
        compare(args.compare)
        return
    set_cpu_threads(1)
    rows = []
    for seed in args.only_seeds:
        rows.append(run_seed(seed, args, args.out))
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        per_candidate = yaml.safe_load(SPACE.read_text())["train"]["epochs"]
        figures: dict[str, Any] = {key: [row[key] for row in rows] for key in rows[0]}
        figures["seeds"] = figures.pop("seed")
        passes = args.epochs * (3 if args.sampling == "sandwich" else 1)  # sandwich: three subnets a batch
        figures["epochs"] = [passes + args.top_k * per_candidate] * len(rows)  # the scoring not counted
        settings = {"epochs": args.epochs, "sampling": args.sampling, "candidates": args.candidates}
        settings["top_k"] = args.top_k
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"one_shot": settings, "strategies": {"one-shot": figures}}, indent=1))


if __name__ == "__main__":
    main()
