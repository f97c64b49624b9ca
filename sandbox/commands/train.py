"""`python -m sandbox train SPEC`: train a concrete spec on its dataset and write a run directory.

`--resume RUN_DIR` continues a run from its last checkpoint (`train.checkpoint_every`), with the
spec it was started with (SPEC may then be left out: the run's spec.yaml is used).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandbox.commands import add_device_options, add_plugin_option, add_spec_argument
from sandbox.spec.overrides import add_set_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a spec on its dataset and write a run directory")
    add_spec_argument(
        parser, "a concrete spec YAML file or shipped name (with --resume: default RUN_DIR/spec.yaml)", optional=True
    )
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--data-dir", type=Path, help="where the dataset's files are (overrides data.root)")
    parser.add_argument("--out", type=Path, help="run directory (default: runs/<name>-<date>-<time>)")
    parser.add_argument("--seed", type=int, help="override train.seed")
    parser.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="continue a stopped run from its checkpoint, in its directory"
    )
    add_set_option(parser)
    add_device_options(parser)
    add_plugin_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sandbox.api import train
    from sandbox.errors import SpecError
    from sandbox.runs import SPEC_FILE
    from sandbox.spec.overrides import load_overridden

    if args.spec is None and args.resume is None:
        raise SpecError("spec", "give a spec file to train (or --resume RUN_DIR to continue a run)")
    if args.resume is not None and args.out is not None and args.out.resolve() != args.resume.resolve():
        raise SpecError("--out", "a resumed run goes on in its own directory: leave --out out, or give the same")
    spec = args.spec or args.resume / SPEC_FILE
    epochs = args.epochs or load_overridden(spec, args.set, plugin_files=args.plugin).train.epochs  # for the lines
    run = train(
        spec,
        out=args.resume or args.out,
        epochs=args.epochs,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        data_dir=args.data_dir,
        plugins=args.plugin,
        overrides=args.set,
        resume=args.resume is not None,
        on_epoch=_print_epoch(epochs),
        say=print,
    )
    metrics, dataset = run.metrics, run.metrics["dataset"]
    print(
        f"test accuracy {metrics['test_accuracy']:.2%} on {dataset['test']:,} {dataset['name']} test images; "
        f"{metrics['train_images_per_second']:,.0f} images/s on {metrics['device']} "
        f"({metrics['train_precision']} steps); "
        f"{metrics['seconds']:.1f} s"
    )
    print(f"run directory: {run.path} (history.csv, curves.png)")
    return 0


def _print_epoch(epochs: int) -> Callable[[int, dict[str, Any]], None]:
    """The one-line summary printed after each epoch."""

    def on_epoch(index: int, record: dict[str, Any]) -> None:
        print(
            f"epoch {index + 1}/{epochs}: train loss {record['loss']:.4f} {record['train_accuracy']:.2%}  "
            f"val loss {record['val_loss']:.4f} {record['val_accuracy']:.2%}  lr peak {record['lr_peak']:.4g}  "
            f"{record['images_per_second']:,.0f} images/s  {record['seconds']:.1f} s",
            flush=True,
        )

    return on_epoch
