"""`python -m sandbox search SPEC`: an Optuna study over the spec's search space."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.commands import add_device_options, add_plugin_option, add_spec_argument
from sandbox.spec.overrides import add_set_option

if TYPE_CHECKING:  # the command's work imports torch and Optuna only once it runs, so --help stays fast
    import optuna
    from optuna.trial import FrozenTrial

    from sandbox.search.run import SearchRun
    from sandbox.train.config import DataConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("search", help="search a spec's space with Optuna under a FLOP budget")
    add_spec_argument(parser, "a spec YAML file or shipped name with search primitives")
    parser.add_argument("--trials", type=int, help="most trials the study holds, all processes counted (default: spec)")
    parser.add_argument("--budget", help="FLOP budget per image, e.g. 50M (default: spec's search.budget)")
    parser.add_argument(
        "--floor", help="train no candidate under this many FLOPs, e.g. 12M or 0.75 of the budget (default: spec's)"
    )
    parser.add_argument("--epochs", type=int, help="training epochs per candidate (default: spec's train.epochs)")
    parser.add_argument("--data-dir", type=Path, help="where the Fashion-MNIST files are")
    parser.add_argument("--out", type=Path, help="run directory (default: runs/<spec name>)")
    parser.add_argument("--storage", help="Optuna storage URL (default: sqlite:///RUN_DIR/study.db)")
    parser.add_argument(
        "--workers", type=int, help="worker processes on this machine (default: one per usable core, as memory allows)"
    )
    parser.add_argument("--seed", type=int, help="sampler and training seed")
    parser.add_argument(
        "--reference-seeds", type=int, help="seeds the best and search.reference each train with to compare"
    )
    add_device_options(parser)
    add_plugin_option(parser)
    add_set_option(parser)
    parser.set_defaults(run=run)


def check_sections(space: dict, data_dir: Path | None) -> DataConfig:
    """Fail before any training on a bad `train:` or `data:` value, which every candidate shares
    (checked as the cheapest candidate carries them); the `data:` section as that candidate reads it."""
    from sandbox.space.primitives import lowest, sample
    from sandbox.train.config import data_config, train_config

    concrete = sample({key: space[key] for key in ("train", "data") if key in space}, lowest)
    train_config(concrete.get("train") or {})
    return data_config(concrete.get("data") or {}, data_dir=data_dir)


def prepare(args: argparse.Namespace) -> SearchRun:
    """Read the space and settings; refuse, before any training, a budget nothing can meet."""
    from sandbox.errors import SpecError
    from sandbox.search.config import search_config
    from sandbox.search.reference import reference_path
    from sandbox.search.run import SearchRun
    from sandbox.space.bounds import largest_flops, no_valid_candidate, smallest_flops
    from sandbox.space.primitives import primitives
    from sandbox.spec.load import load_plugins, read_yaml
    from sandbox.spec.overrides import apply_overrides
    from sandbox.train.data import fetch
    from sandbox.train.device import resolve_device, set_cpu_threads
    from sandbox.train.rundir import file_name

    device = str(resolve_device(args.device))  # before anything loads or trains: a missing GPU is one line
    spec_path = Path(args.spec)
    space = apply_overrides(read_yaml(spec_path), args.set)  # --set: as if the file said so
    base = spec_path.resolve().parent
    load_plugins(space, base, args.plugin)
    config = search_config(space.get("search") or {}).with_overrides(
        trials=args.trials,
        budget=args.budget,
        floor=_floor_flag(args.floor),
        epochs=args.epochs,
        workers=args.workers,
        seed=args.seed,
        reference_seeds=args.reference_seeds,
    )
    if not primitives(space):
        raise SpecError(str(spec_path), "has no search primitives ({choice: ...}, {int: ...}, {float: ...})")
    name = str(space.get("name") or spec_path.stem)
    run_dir = (args.out or Path("runs") / file_name(name)).resolve()
    existing = next(path for path in (run_dir, *run_dir.parents) if path.exists())
    if not existing.is_dir():  # before the dataset is fetched, so the mistake costs nothing
        raise SpecError("--out", f"{existing} is a file; a search's run directory must be a directory (or not exist)")
    fetch(check_sections(space, args.data_dir))  # once, here: workers must not all download it at once
    set_cpu_threads(args.threads)  # this process is worker 0; a bad --threads fails here
    smallest = smallest_flops(space, base)  # also proves, before any training, that some candidate builds
    if smallest is None:
        raise no_valid_candidate(space, base)
    if config.budget is not None and smallest > config.budget:
        raise SpecError(
            "search.budget",
            f"no candidate fits {config.budget / 1e6:.2f} MFLOPs: the smallest this space allows is "
            f"{smallest / 1e6:.2f} MFLOPs ({smallest:,} FLOPs)",
        )
    config.check_band("--floor" if args.floor is not None else "search.budget.floor")
    floor = config.floor_flops
    if floor is not None:
        largest = largest_flops(space, base)
        if largest is not None and largest < floor:
            raise SpecError(
                "--floor" if args.floor is not None else "search.budget.floor",
                f"no candidate reaches {floor / 1e6:.2f} MFLOPs: the largest this space allows is "
                f"{largest / 1e6:.2f} MFLOPs",
            )
    if config.reference is None and args.reference_seeds is not None:
        raise SpecError("--reference-seeds", "needs search.reference in the spec, the network to compare with")
    reference = reference_path(config.reference, base) if config.reference is not None else None
    storage = args.storage or f"sqlite:///{run_dir / 'study.db'}"
    plugins = tuple(Path(file).resolve() for file in args.plugin)
    search = SearchRun(
        space, base, name, config, run_dir, storage, device, args.data_dir, plugins, reference, args.threads
    )
    epochs = search.recipe()["epochs"]
    if config.pruner in ("asha", "hyperband") and isinstance(epochs, int) and not config.rungs(epochs):
        raise SpecError(
            "search.first_rung", f"{config.first_rung} leaves no rung before the last of {epochs} epochs per trial"
        )
    return search


def _floor_flag(value: str | None) -> str | float | None:
    """`--floor 0.75` is a fraction of the budget, as `floor: 0.75` in the spec; anything else a FLOP count."""
    try:
        return float(value) if value is not None and 0 < float(value) < 1 else value
    except ValueError:
        return value


def _rungs(search: SearchRun) -> str:
    epochs = search.recipe()["epochs"]
    rungs = search.config.rungs(epochs) if isinstance(epochs, int) else []
    return f" (rungs at epochs {', '.join(map(str, rungs))})" if rungs else ""


def run(args: argparse.Namespace) -> int:
    import signal

    import optuna

    from sandbox.oneshot.strategy import one_shot_stage
    from sandbox.search.interrupt import acknowledge, stop_requests
    from sandbox.search.progress import resume_command
    from sandbox.search.report import record_settings, search_settings
    from sandbox.search.storage import fail_dead_local_trials, open_study, storage_errors
    from sandbox.search.workers import plan_workers, run_workers
    from sandbox.spec.overrides import blaming

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sandbox prints its own trial lines
    with blaming(args.set):
        search = prepare(args)
    make_run_dir(search.run_dir)
    study = open_study(search)
    with storage_errors(search.storage_url), stop_requests(signal.SIGINT) as stop:  # Ctrl-C stops it cleanly
        try:
            revived = fail_dead_local_trials(study)
            if revived:
                cut = ", ".join(map(str, revived))
                print(f"resuming: trials {cut} were cut off by a crash; marked failed, retried")
            search = one_shot_stage(search, study)  # search.strategy: one-shot enqueues its picks, trials = top_k
            search = plan_workers(search, study)
            record_settings(study, search_settings(search, args.spec))
            print(_study_line(search, len(study.get_trials(deepcopy=False))), flush=True)
            run_workers(search)
        except KeyboardInterrupt:
            acknowledge()
            stop.requested = True  # however it was raised
    interrupted = stop.requested
    if interrupted:
        fail_dead_local_trials(study)  # a worker that had to be killed left its trial running
        print("\ninterrupted: the running trials are marked failed and retried on resuming; results so far:")
    best = report(search, study)
    if best is not None and search.reference is not None and not interrupted:
        compare_with_reference(search, search.reference, best)
    if best is not None:  # after the comparison: the report draws the reference network's point
        from sandbox.search.report import write_report

        write_report(study, search.run_dir)
        print(f"report: {search.run_dir / 'report.html'}")
    if interrupted:
        print(f"resume with: {resume_command(args.argv)}")
        return 130
    return 0 if best is not None else nothing_trained(study)


def _study_line(search: SearchRun, stored: int) -> str:
    config = search.config
    return (
        f"study {search.name!r} in {search.storage_url}: {stored} trials stored, target {config.trials}; "
        f"sampler {config.sampler}, pruner {config.pruner}{_rungs(search)}, "
        f"budget {config.budget / 1e6 if config.budget else float('inf'):.2f} MFLOPs"
        + (f", floor {config.floor_flops / 1e6:.2f} MFLOPs" if config.floor_flops else "")
        + f"; {config.workers} worker{'s' * (config.workers != 1)}"
    )


def make_run_dir(run_dir: Path) -> None:
    """The run directory, or one line saying why it cannot be made (read-only, no space)."""
    from sandbox.errors import SandboxError

    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SandboxError(f"cannot create the run directory {run_dir}: {err.strerror or err}") from err


def nothing_trained(study: optuna.Study) -> int:
    """1, with the first failure's reason, when the study holds no result because its trials failed;
    0 when none failed (every candidate over budget or invalid is an answer, if a poor one)."""
    import sys

    from optuna.trial import TrialState

    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    if not failed:
        return 0
    first = failed[0]
    reason = first.user_attrs.get("error", "interrupted")
    line = f"error: no candidate trained to the end; {len(failed)} failed, trial {first.number}: {reason}"
    print(line, file=sys.stderr)
    return 1


def report(search: SearchRun, study: optuna.Study) -> FrozenTrial | None:
    """Leaderboard, summary, best.yaml and best/; returns the best trial."""
    from sandbox.search.results import (
        best_trial,
        export_best,
        format_leaderboard,
        pareto_front,
        summary,
        write_leaderboard,
    )

    trials = study.get_trials(deepcopy=False)
    write_leaderboard(trials, search.run_dir / "leaderboard.csv")
    print(summary(trials))
    if search.config.multi_objective:
        print("Pareto front (validation accuracy vs FLOPs):")
        print(format_leaderboard(pareto_front(trials), limit=len(trials)))
    else:
        print(format_leaderboard(trials))
    best = best_trial(study)
    if best is not None:
        export_best(best, search.run_dir)
        print(f"best: trial {best.number}, spec {search.run_dir / 'best.yaml'}, weights {search.run_dir / 'best'}")
    print(f"leaderboard: {search.run_dir / 'leaderboard.csv'}")
    return best


def compare_with_reference(search: SearchRun, path: Path, best: FrozenTrial) -> None:
    """Train the reference spec at `path` as the best candidate was trained (with each of
    `search.reference_seeds` seeds, the best too) and print how they compare."""
    from sandbox.search.reference import (
        ComparisonRuns,
        best_spec,
        format_comparison,
        measure_best,
        measure_reference,
        reference_spec,
        write_comparison,
    )

    config = search.config
    seeds = [config.seed + offset for offset in range(config.reference_seeds)]
    runs = ComparisonRuns(search.run_dir, config.epochs, search.device, search.data_dir)
    candidate = best_spec(best, search.base)
    best_measured = measure_best(best, candidate, seeds, runs)
    reference = measure_reference(reference_spec(path, candidate), seeds, runs)
    write_comparison(best_measured, reference, search.run_dir)
    print(format_comparison(best_measured, reference, path))
