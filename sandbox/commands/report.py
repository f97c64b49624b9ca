"""`sandbox report RUN_DIR`: PNG plots, RUN_DIR/report.html and the leaderboard of a search run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.errors import SandboxError

if TYPE_CHECKING:  # Optuna is imported once the command runs, so --help stays fast
    import optuna


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="write PNG plots, report.html and the leaderboard of a search run")
    parser.add_argument("run_dir", type=Path, help="the search's run directory")
    parser.add_argument("--storage", help="Optuna storage URL (default: sqlite:///RUN_DIR/study.db)")
    parser.add_argument("--study", help="study name (default: the only study in the storage)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import optuna

    from sandbox.search.report import write_report
    from sandbox.search.results import format_leaderboard, summary, write_leaderboard

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not args.run_dir.is_dir():
        raise SandboxError(f"{args.run_dir} is not a directory: give a search's run directory")
    study = load(args)
    trials = study.get_trials(deepcopy=False)
    if not trials:
        raise SandboxError(f"study {study.study_name!r} holds no trials yet: nothing to report")
    write_leaderboard(trials, args.run_dir / "leaderboard.csv")
    print(summary(trials))
    print(format_leaderboard(trials))
    for file, skipped in write_report(study, args.run_dir).items():
        where = args.run_dir / ("" if file.endswith(".html") else "plots") / file
        print(f"{where}" + (f"  ({skipped})" if skipped else ""))
    return 0


def load(args: argparse.Namespace) -> optuna.Study:
    """The study to report on, or one line saying why there is none (nothing is created on the way)."""
    import optuna

    from sandbox.search.storage import STUDY_ATTR, open_storage

    db = args.run_dir / "study.db"
    if args.storage is None:
        if not db.is_file():
            raise SandboxError(f"{args.run_dir} holds no study.db: is it a search run directory? (or pass --storage)")
        if db.stat().st_size == 0:
            raise SandboxError(f"{db} is empty (0 bytes): it holds no study; restore it from a backup")
    storage = open_storage(args.storage or f"sqlite:///{db.resolve()}")
    names = optuna.study.get_all_study_names(storage)
    if not names:
        raise SandboxError(f"the storage of {args.run_dir} holds no study")
    if args.study is None and len(names) != 1:
        raise SandboxError(f"the storage holds {len(names)} studies ({', '.join(names)}); name one with --study")
    name = args.study or names[0]
    if name not in names:
        raise SandboxError(f"no study {name!r} in the storage (studies: {', '.join(names)})")
    study = optuna.load_study(study_name=name, storage=storage)
    if not isinstance(study.user_attrs.get(STUDY_ATTR), dict):  # its trials lack the specs and FLOPs a report reads
        raise SandboxError(f"study {name!r} was not made by a sandbox search: report reads only those")
    return study
