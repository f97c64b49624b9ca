"""`python -m sandbox train SPEC`: train a concrete spec on Fashion-MNIST and write a run directory."""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandbox.commands import add_device_options, add_plugin_option
from sandbox.spec.load import load_spec


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a spec on Fashion-MNIST and write a run directory")
    parser.add_argument("spec", help="a concrete spec YAML file")
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--data-dir", type=Path, help="where the full Fashion-MNIST release is (overrides data.root)")
    parser.add_argument("--out", type=Path, help="run directory (default: runs/<name>-<date>-<time>)")
    parser.add_argument("--seed", type=int, help="override train.seed")
    add_device_options(parser)
    add_plugin_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sandbox.train.device import resolve_device, set_cpu_threads
    from sandbox.train.loop import train_run
    from sandbox.train.rundir import concrete_raw

    device = str(resolve_device(args.device))
    set_cpu_threads(args.threads)
    spec = load_spec(args.spec, plugin_files=args.plugin)
    # The run's spec.yaml must rebuild the network, so --plugin files become part of it.
    spec = dataclasses.replace(spec, raw=concrete_raw(spec, args.plugin))
    out = args.out or Path("runs") / f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    metrics = train_run(
        spec,
        out_dir=out,
        epochs=args.epochs,
        device=device,
        seed=args.seed,
        data_dir=args.data_dir,
        on_epoch=_print_epoch(spec.train.with_overrides(epochs=args.epochs).epochs),
    )
    dataset = metrics["dataset"]
    print(
        f"test accuracy {metrics['test_accuracy']:.2%} on {dataset['test']:,} {dataset['name']} test images; "
        f"{metrics['train_images_per_second']:,.0f} images/s on {metrics['device']} "
        f"({metrics['train_precision']} steps); "
        f"{metrics['seconds']:.1f} s"
    )
    print(f"run directory: {out}")
    return 0


def _print_epoch(epochs: int) -> Callable[[int, dict[str, Any]], None]:
    """The one-line summary printed after each epoch."""

    def on_epoch(index: int, record: dict[str, Any]) -> None:
        print(
            f"epoch {index + 1}/{epochs}: loss {record['loss']:.4f}  val {record['val_accuracy']:.2%}  "
            f"lr {record['lr']:.4g}  {record['images_per_second']:,.0f} images/s  {record['seconds']:.1f} s",
            flush=True,
        )

    return on_epoch
