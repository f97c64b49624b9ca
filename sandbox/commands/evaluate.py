"""`python -m sandbox evaluate RUN_DIR`: re-measure a run's test accuracy from its saved files (a
search's run directory stands for its best trial)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sandbox.commands import add_device_options, add_plugin_option
from sandbox.errors import SandboxError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="re-measure a run's test accuracy, with a per-class table")
    parser.add_argument("run_dir", type=Path, help="a run directory written by `train`, or by `search` (its best)")
    parser.add_argument("--data-dir", type=Path, help="where the spec's dataset is (overrides data.root)")
    add_device_options(parser)
    add_plugin_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from sandbox.export.source import run_directory
    from sandbox.train.data import load_for, names_text
    from sandbox.train.device import resolve_device, set_cpu_threads
    from sandbox.train.loop import predict
    from sandbox.train.rundir import load_run, read_metrics

    device = resolve_device(args.device)
    set_cpu_threads(args.threads)
    run_dir = run_directory(args.run_dir) if args.run_dir.is_dir() else args.run_dir  # a search's: its best
    spec, model = load_run(run_dir, device=device, plugin_files=args.plugin)
    data = load_for(spec, device, args.data_dir)  # shaped for the spec as training shaped it
    recorded_data = read_metrics(run_dir).get("dataset")
    trained_on = recorded_data.get("class_names") if isinstance(recorded_data, dict) else None
    if isinstance(trained_on, list) and trained_on != list(data.classes):
        raise SandboxError(
            f"{run_dir} was trained on the classes {names_text(trained_on)}, but {data.name} in "
            f"{data.root} has {names_text(data.classes)}: not the dataset it was trained on"
        )
    predicted = predict(model, data.test, batch=spec.train.batch_size).cpu()  # as the run measured it
    labels = data.test.labels.cpu()
    total = torch.bincount(labels, minlength=len(data.classes))
    correct = torch.bincount(labels[predicted == labels], minlength=len(data.classes))
    width = max(14, *(len(name) + 1 for name in data.classes))
    print(f"{'class':<{width}} {'images':>7} {'correct':>8} {'accuracy':>9}")
    for name, n, right in zip(data.classes, total.tolist(), correct.tolist(), strict=True):
        print(f"{name:<{width}} {n:>7} {right:>8} {right / max(n, 1):>9.2%}")
    accuracy = correct.sum().item() / len(labels)
    recorded = read_metrics(run_dir).get("test_accuracy")
    print(f"{'all':<{width}} {len(labels):>7} {correct.sum().item():>8} {accuracy:>9.2%}")
    if isinstance(recorded, float):
        print(f"recorded at training time: {recorded:.2%} ({data.name}, {len(labels):,} test images)")
    return 0
