"""Does the search beat random sampling at the same compute? Several strategies, one space, one recipe.

Every strategy gets the same training budget, counted in epochs summed over its trials (a pruned
trial costs the epochs it trained, an over-budget or repeated candidate none; the trial that would
take the sum past the budget does not count), and runs with
`--seeds` seeds. Strategies (add more in STRATEGIES):
  random-pruned  random sampling with the default search's pruner (asha's first_rung/reduction_factor
                 when the default does not prune: the quickstart now doesn't), no FLOP floor;
  random         random sampling under the budget alone, every candidate trained to the end;
  default        the sandbox's default search (the space's `search:` sampler and pruner).
Per strategy it prints, as the mean and range over seeds: the best validation accuracy, the test
accuracy of that pick (reported only, never used to choose), the epochs used, and the trial at
which the best appeared. It draws the anytime curve (best validation accuracy against epochs
spent, one line per strategy, the seeds' range shaded) as a PNG, and `--json FILE` writes
{"strategies": {NAME: {"best_val": [...], "test_of_best": [...], "epochs": [...]}}}, one entry per seed.

    python bench/search_vs_random.py --quick          # a reduced setting: under 10 minutes on 2 CPU cores
    python bench/search_vs_random.py --seeds 3 --budget 400 --json runs/svr.json --plot runs/svr.png

`--surrogate TABLE` compares strategies on the surrogate calibrated on a trained table instead of
training (`surrogate_compare.py`): 500 paired seeds at 128, 256 and 512 epochs by default.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
from search_efficiency import make_run

from sandbox.search.objective import Objective
from sandbox.search.record import EPOCHS_TRAINED, TEST_ACCURACY
from sandbox.search.results import is_result
from sandbox.search.run import SearchRun
from sandbox.search.storage import open_study
from sandbox.train.device import set_cpu_threads

REPO = Path(__file__).resolve().parents[1]
STRATEGIES: dict[str, Callable[[SearchRun], dict[str, Any]]] = {
    "random-pruned": lambda run: {"sampler": "random", "pruner": pruning(run.config.pruner), "floor": None},
    "random": lambda run: {"sampler": "random", "pruner": "none", "floor": None},
    "default": lambda run: {},
    # the default search before issue 12 (TPE with the median pruner), for comparison only
    "tpe-median": lambda run: {"sampler": "tpe", "pruner": "median", "startup_trials": None},
    # the quickstart's search measured in bench/README.md (TPE with asha), before it stopped pruning
    "tpe-asha": lambda run: {"sampler": "tpe", "pruner": "asha"},
    # asha whose rungs each train a complete short schedule (ranks better than a slice: rank_correlation.py)
    "tpe-asha-complete": lambda run: {"sampler": "tpe", "pruner": "asha", "rung_schedule": "complete"},
}
DEFAULT_STRATEGIES = ["random-pruned", "random", "default"]


def pruning(pruner: str) -> str:
    """The default's pruner, or asha where the default trains every candidate to the end."""
    return "asha" if pruner == "none" else pruner


@dataclass(frozen=True)
class Outcome:
    """One strategy with one seed: its trials in order, as (epochs spent so far, best val so far)."""

    seed: int
    curve: list[tuple[int, float]]
    best_val: float
    test_of_best: float
    epochs: int
    best_trial: int


def epochs_of(trial: optuna.trial.FrozenTrial) -> int:
    return int(trial.user_attrs.get(EPOCHS_TRAINED, 0))


def stop_after(budget: int) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """An Optuna callback that ends the study once its trials have trained `budget` epochs in all."""

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if sum(epochs_of(t) for t in study.get_trials(deepcopy=False)) >= budget:
            study.stop()

    return callback


def run_strategy(run: SearchRun, budget: int, device: str, seed: int) -> Outcome:
    study = open_study(run)
    study.optimize(Objective(run, device), callbacks=[stop_after(budget)], catch=(Exception,))
    curve: list[tuple[int, float]] = []
    spent, best, best_number, test = 0, 0.0, -1, 0.0
    for trial in study.get_trials(deepcopy=False):
        if spent + epochs_of(trial) > budget:
            break  # the trial that crossed the budget: every strategy loses its last, unfinished share alike
        spent += epochs_of(trial)
        if is_result(trial) and trial.values[0] > best:
            best, best_number, test = trial.values[0], trial.number, float(trial.user_attrs[TEST_ACCURACY])
        curve.append((spent, best))
    return Outcome(seed, curve, best, test, spent, best_number)


def spread(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    """Mean and range, as `89.31 (88.90-89.75)`."""
    scaled = [v * scale for v in values]
    return f"{statistics.mean(scaled):.{digits}f} ({min(scaled):.{digits}f}-{max(scaled):.{digits}f})"


def report(outcomes: dict[str, list[Outcome]]) -> None:
    print(f"{'strategy':<15} {'best val %':>22} {'test of best %':>22} {'epochs':>18} {'best at trial':>18}")
    for name, runs in outcomes.items():
        val, test = spread([o.best_val for o in runs], 100), spread([o.test_of_best for o in runs], 100)
        epochs, at = spread([o.epochs for o in runs], digits=0), spread([o.best_trial for o in runs], digits=0)
        print(f"{name:<15} {val:>22} {test:>22} {epochs:>18} {at:>18}")


def best_by_epoch(curve: list[tuple[int, float]], epochs: list[int]) -> list[float]:
    """The best validation accuracy known after each of `epochs` epochs spent (a step function)."""
    values, index, best = [], 0, 0.0
    for epoch in epochs:
        while index < len(curve) and curve[index][0] <= epoch:
            best = curve[index][1]
            index += 1
        values.append(best)
    return values


def plot(outcomes: dict[str, list[Outcome]], budget: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = list(range(budget + 1))
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, runs in outcomes.items():
        curves = [best_by_epoch(o.curve, epochs) for o in runs]
        low = [min(c[i] for c in curves) for i in epochs]
        high = [max(c[i] for c in curves) for i in epochs]
        mean = [statistics.mean(c[i] for c in curves) for i in epochs]
        (line,) = axes.plot(epochs, mean, label=f"{name} (mean of {len(runs)} seeds)")
        axes.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2)
    finished = [v for runs in outcomes.values() for o in runs for _, v in o.curve if v > 0]
    if finished:
        axes.set_ylim(min(finished) - 0.01, max(finished) + 0.005)
    axes.set_xlabel("epochs spent (summed over trials)")
    axes.set_ylabel("best validation accuracy so far")
    axes.set_title("search against random sampling at equal compute")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def quick_space(space_path: Path, folder: Path) -> Path:
    """The space with a reduced recipe: 3 epochs per candidate, 30% of the sample validating, and no
    reference network to train after it."""
    import yaml

    raw = yaml.safe_load(space_path.read_text())
    raw["train"] = {**raw.get("train", {}), "epochs": 3}
    raw["data"] = {**raw.get("data", {}), "val_fraction": 0.3}
    raw["search"] = {key: value for key, value in (raw.get("search") or {}).items() if key != "reference"}
    path = folder / space_path.name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def epochs_per_candidate(space: Path) -> int:
    from sandbox.spec.load import read_yaml
    from sandbox.spec.recipe import train_config

    return train_config(read_yaml(space).get("train") or {}).epochs


def strategies(space: Path, names: list[str], seeds: list[int], workdir: Path) -> Iterator[tuple[str, int, SearchRun]]:
    for name in names:
        for seed in seeds:
            base = make_run(space, workdir / f"{name}-seed{seed}", seed=seed, workers=1)
            yield name, seed, replace(base, config=replace(base.config, **STRATEGIES[name](base)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", type=Path, default=REPO / "search_spaces" / "quickstart.yaml")
    parser.add_argument("--seeds", type=int, help="seeds 0..N-1 (default 3; 500 with --surrogate)")
    parser.add_argument(
        "--only-seeds", type=int, nargs="+", help="run these seeds only (to share seeds among processes)"
    )
    parser.add_argument(
        "--threads", type=int, help="CPU threads (default 1, so processes side by side compare; 2 with --quick)"
    )
    parser.add_argument("--merge", type=Path, nargs="+", help="print and plot the --json files of earlier runs")
    parser.add_argument("--budget", type=int, help="epochs per strategy and seed (default: 10 full trainings)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--strategies", nargs="+", help=f"default: {' '.join(DEFAULT_STRATEGIES)}")
    parser.add_argument("--quick", action="store_true", help="3 epochs per candidate, 3 trainings' worth each")
    parser.add_argument("--json", type=Path, help="write the per-seed figures here")
    parser.add_argument("--plot", type=Path, default=Path("runs/search_vs_random.png"))
    parser.add_argument("--keep", type=Path, help="keep the studies here (default: a temporary folder)")
    parser.add_argument("--surrogate", type=Path, help="a trained table (table.py): simulate instead of training")
    parser.add_argument("--seed-offset", type=int, default=0, help="seeds from this one on (surrogate mode)")
    parser.add_argument("--epochs", type=int, nargs="+", default=[128, 256, 512], help="surrogate mode's budgets")
    parser.add_argument("--procs", type=int, default=2, help="processes (surrogate mode)")
    args = parser.parse_args()
    if args.surrogate is not None:
        from surrogate_compare import main as compare

        raise SystemExit(compare(args, parser))
    if args.merge:
        budget, outcomes = merged(args.merge)
        report(outcomes)
        plot(outcomes, budget, args.plot)
        print(f"anytime curve: {args.plot}")
        return
    unknown = set(args.strategies or ()) - set(STRATEGIES)
    if unknown:
        parser.error(f"--strategies: unknown {', '.join(sorted(unknown))} (known: {', '.join(STRATEGIES)})")
    args.strategies = args.strategies or DEFAULT_STRATEGIES
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    set_cpu_threads(args.threads or (2 if args.quick else 1))
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = (args.keep or Path(tmp)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        space = quick_space(args.space, workdir) if args.quick else args.space
        budget = args.budget or (3 if args.quick else 10) * epochs_per_candidate(space)
        seeds = args.only_seeds if args.only_seeds is not None else list(range(args.seeds or 3))
        print(f"space {args.space.name}{' (quick)' if args.quick else ''}: seeds {seeds}, {budget} epochs each")
        outcomes: dict[str, list[Outcome]] = {name: [] for name in args.strategies}
        for name, seed, run in strategies(space, args.strategies, seeds, workdir):
            outcome = run_strategy(run, budget, args.device, seed)
            outcomes[name].append(outcome)
            print(
                f"  {name:<14} seed {seed}: best val {outcome.best_val:.4f} (trial {outcome.best_trial}), "
                f"test {outcome.test_of_best:.4f}, {outcome.epochs} epochs, {time.perf_counter() - began:.0f} s",
                flush=True,
            )
    report(outcomes)
    plot(outcomes, budget, args.plot)
    print(f"anytime curve: {args.plot}; {time.perf_counter() - began:.0f} s in all")
    if args.json:
        figures = {
            name: {
                "seeds": [o.seed for o in runs],
                "best_val": [o.best_val for o in runs],
                "test_of_best": [o.test_of_best for o in runs],
                "epochs": [o.epochs for o in runs],
                "best_trial": [o.best_trial for o in runs],
                "curves": [o.curve for o in runs],
            }
            for name, runs in outcomes.items()
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"budget": budget, "strategies": figures}, indent=2))


def merged(paths: list[Path]) -> tuple[int, dict[str, list[Outcome]]]:
    """The outcomes of several --json files (each strategy's seeds in file order) and their budget."""
    outcomes: dict[str, list[Outcome]] = {}
    budgets = set()
    for path in paths:
        figures = json.loads(path.read_text())
        budgets.add(figures["budget"])
        for name, runs in figures["strategies"].items():
            for i, seed in enumerate(runs["seeds"]):
                curve = [(int(spent), float(best)) for spent, best in runs["curves"][i]]
                outcomes.setdefault(name, []).append(
                    Outcome(
                        seed,
                        curve,
                        runs["best_val"][i],
                        runs["test_of_best"][i],
                        runs["epochs"][i],
                        runs["best_trial"][i],
                    )
                )
    if len(budgets) != 1:
        raise SystemExit(f"the files were run with different budgets: {sorted(budgets)}")
    return budgets.pop(), outcomes


if __name__ == "__main__":
    main()
