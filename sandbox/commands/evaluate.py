"""`python -m sandbox evaluate RUN_DIR`: re-measure a run's test accuracy from its saved files (a
search's run directory stands for its best trial)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sandbox.commands import add_device_options, add_plugin_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="re-measure a run's test accuracy, with a per-class table")
    parser.add_argument("run_dir", type=Path, help="a run directory written by `train`, or by `search` (its best)")
    parser.add_argument("--data-dir", type=Path, help="where the spec's dataset is (overrides data.root)")
    add_device_options(parser)
    add_plugin_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sandbox.api import evaluate

    result = evaluate(
        args.run_dir, device=args.device, threads=args.threads, data_dir=args.data_dir, plugins=args.plugin
    )
    width = max(14, *(len(name) + 1 for name in result.classes))
    print(f"{'class':<{width}} {'images':>7} {'correct':>8} {'accuracy':>9}")
    for name, (n, right) in result.classes.items():
        print(f"{name:<{width}} {n:>7} {right:>8} {right / max(n, 1):>9.2%}")
    right = sum(r for _, r in result.classes.values())
    print(f"{'all':<{width}} {result.images:>7} {right:>8} {result.accuracy:>9.2%}")
    if result.recorded is not None:
        print(f"recorded at training time: {result.recorded:.2%} ({result.dataset}, {result.images:,} test images)")
    return 0
