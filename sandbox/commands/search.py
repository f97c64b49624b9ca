"""`python -m sandbox search SPEC`: an Optuna study over the spec's search space."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.commands import add_device_options, add_plugin_option, add_spec_argument
from sandbox.spec.overrides import add_set_option

if TYPE_CHECKING:  # the command's work imports torch and Optuna only once it runs, so --help stays fast
    import optuna


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


def _floor_flag(value: str | None) -> str | float | None:
    """`--floor 0.75` is a fraction of the budget, as `floor: 0.75` in the spec; anything else a FLOP count."""
    try:
        return float(value) if value is not None and 0 < float(value) < 1 else value
    except ValueError:
        return value


def run(args: argparse.Namespace) -> int:
    from sandbox.search.flow import SearchSettings, search
    from sandbox.search.progress import resume_command

    settings = SearchSettings(
        trials=args.trials,
        budget=args.budget,
        floor=_floor_flag(args.floor),
        epochs=args.epochs,
        workers=args.workers,
        seed=args.seed,
        reference_seeds=args.reference_seeds,
        out=args.out,
        storage=args.storage,
        device=args.device,
        threads=args.threads,
        data_dir=args.data_dir,
        plugins=args.plugin,
        overrides=args.set,
    )
    result = search(args.spec, settings, say=lambda line: print(line, flush=True))
    if result.interrupted:
        print(f"resume with: {resume_command(args.argv)}")
        return 130
    return 0 if result.best_trial is not None else nothing_trained(result.study)


def nothing_trained(study: optuna.Study) -> int:
    """1, with the first failure's reason, when the study holds no result because its trials failed;
    0 when none failed (every candidate over budget or invalid is an answer, if a poor one)."""
    import sys

    from optuna.trial import TrialState

    from sandbox.search.record import ERROR

    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    if not failed:
        return 0
    first = failed[0]
    reason = first.user_attrs.get(ERROR, "interrupted")
    line = f"error: no candidate trained to the end; {len(failed)} failed, trial {first.number}: {reason}"
    print(line, file=sys.stderr)
    return 1
