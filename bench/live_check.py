"""Does a live comparison fall where the surrogate said it would? The test accuracy of the picks, seed by seed.

Reads the live runs of `search_vs_random.py` (their `--json` files, any number, merged by strategy)
and the surrogate comparison's `--json` file at the same compute, and prints per paired seed the test
accuracy of each strategy's pick (never used to choose) and the gain of `--strategy` over `random`;
then the mean gain against the surrogate's prediction for a mean over as many seeds: the surrogate's
mean gain, with a 95% interval that adds to the spread of its per-seed gains the noise of one live
test measurement on each side (the surrogate's run-to-run noise, scaled from the validation images
to the test images as a binomial's would be).

    python bench/live_check.py --live random.json default.json --surrogate-json surrogate.json --epochs 128
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any


def live_tests(paths: list[Path]) -> dict[str, dict[int, float]]:
    """Per strategy, per seed: the test accuracy of the pick (in points)."""
    found: dict[str, dict[int, float]] = {}
    for path in paths:
        for name, runs in json.loads(path.read_text())["strategies"].items():
            for seed, test in zip(runs["seeds"], runs["test_of_best"], strict=True):
                found.setdefault(name, {})[seed] = 100 * test
    return found


def predicted(figures: dict[str, Any], strategy: str, epochs: int, seeds: int) -> tuple[float, float, float]:
    """The surrogate's mean gain over random at `epochs` and the 95% interval for a mean over `seeds` live seeds."""
    runs = figures["strategies"]

    def at(name: str) -> list[float]:
        return [100 * s for s, e in zip(runs[name]["score"], runs[name]["epochs"], strict=True) if e == epochs]

    gains = [a - b for a, b in zip(at(strategy), at("random"), strict=True)]
    test_noise = 100 * figures["noise"] * math.sqrt(figures["val_images"] / figures["test_images"])
    spread = math.sqrt(statistics.variance(gains) + 2 * test_noise**2)
    mean = statistics.fmean(gains)
    return mean, mean - 1.96 * spread / math.sqrt(seeds), mean + 1.96 * spread / math.sqrt(seeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--live", type=Path, nargs="+", required=True, help="search_vs_random.py --json files")
    parser.add_argument("--surrogate-json", type=Path, required=True, help="search_vs_random.py --surrogate --json")
    parser.add_argument("--epochs", type=int, default=128, help="the live runs' compute")
    parser.add_argument("--strategy", default="default")
    args = parser.parse_args()
    tests = live_tests(args.live)
    if "random" not in tests or args.strategy not in tests:
        parser.error(f"--live: the files must hold 'random' and {args.strategy!r} (they hold {sorted(tests)})")
    seeds = sorted(set(tests["random"]) & set(tests[args.strategy]))
    print(f"{'seed':>4} {'random test %':>14} {args.strategy + ' test %':>16} {'gain':>8}")
    gains = []
    for seed in seeds:
        gain = tests[args.strategy][seed] - tests["random"][seed]
        gains.append(gain)
        print(f"{seed:>4} {tests['random'][seed]:>14.2f} {tests[args.strategy][seed]:>16.2f} {gain:>+8.2f}")
    mean, low, high = predicted(json.loads(args.surrogate_json.read_text()), args.strategy, args.epochs, len(seeds))
    live = statistics.fmean(gains)
    inside = "inside" if low <= live <= high else "outside"
    print(
        f"live mean gain {live:+.2f} points over {len(seeds)} paired seeds; the surrogate predicts {mean:+.2f} "
        f"(95% interval for a mean of {len(seeds)} live seeds {low:+.2f} to {high:+.2f}): {inside}"
    )


if __name__ == "__main__":
    main()
