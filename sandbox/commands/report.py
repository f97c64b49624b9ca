"""`python -m sandbox report RUN_DIR`: PNG plots and the leaderboard of a search run."""

from __future__ import annotations

import argparse
from pathlib import Path

from sandbox.errors import SandboxError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="write PNG plots and the leaderboard of a search run")
    parser.add_argument("run_dir", type=Path, help="the search's run directory")
    parser.add_argument("--storage", help="Optuna storage URL (default: sqlite:///RUN_DIR/study.db)")
    parser.add_argument("--study", help="study name (default: the only study in the storage)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import optuna

    from sandbox.search.report import write_plots
    from sandbox.search.results import format_leaderboard, summary, write_leaderboard
    from sandbox.search.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db = args.run_dir / "study.db"
    if args.storage is None and not db.is_file():
        raise SandboxError(f"{args.run_dir} holds no study.db: is it a search run directory? (or pass --storage)")
    storage = open_storage(args.storage or f"sqlite:///{db.resolve()}")
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if args.study is None and len(names) != 1:
        raise SandboxError(f"the storage holds {len(names)} studies ({', '.join(names)}); name one with --study")
    name = args.study or names[0]
    if name not in names:
        raise SandboxError(f"no study {name!r} in the storage (studies: {', '.join(names)})")
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    write_leaderboard(trials, args.run_dir / "leaderboard.csv")
    print(summary(trials))
    print(format_leaderboard(trials))
    plots = args.run_dir / "plots"
    for file, skipped in write_plots(study, plots).items():
        print(f"{plots / file}" + (f"  ({skipped})" if skipped else ""))
    return 0
