"""`sandbox export SOURCE`: a standalone model file from a run directory or a spec.

SOURCE is a `sandbox train` run directory, a `sandbox search` run directory (its best trial; with
`--subnet K`, a one-shot search's K-th best scored subnet with the supernet's weights), or a spec file
(with `--weights FILE` for trained weights, without for an untrained network).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sandbox.commands import add_plugin_option
from sandbox.errors import SpecError
from sandbox.export import FORMATS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a standalone model file (.py needing only torch, .pt2, .onnx)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", type=Path, help="a train or search run directory, or a spec file")
    parser.add_argument(
        "--format",
        choices=tuple(FORMATS),
        default="py",
        help="; ".join(f"{name}: {format.help}" for name, format in FORMATS.items()),
    )
    parser.add_argument("--out", type=Path, help="file to write (default: the spec's name, in the current directory)")
    parser.add_argument("--weights", type=Path, help="weights (.safetensors or .pt state dict) instead of the run's")
    parser.add_argument(
        "--subnet",
        type=int,
        metavar="K",
        help="a one-shot search run: its K-th best scored subnet, with the supernet's weights (1 = the best)",
    )
    parser.add_argument("--data-dir", type=Path, help="with --subnet: where the search's dataset is")
    add_plugin_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sandbox.export import write
    from sandbox.export.source import resolve

    if args.subnet is not None:
        from sandbox.api import subnet_exportable

        if args.weights is not None:
            raise SpecError("--weights", "a subnet's weights are the supernet's; leave out --weights with --subnet")
        exportable = subnet_exportable(args.source, args.subnet, data_dir=args.data_dir, plugins=args.plugin)
    else:
        exportable = resolve(args.source, weights=args.weights, plugin_files=args.plugin)
    for path in write(exportable, args.out, args.format):
        print(f"wrote {path} ({_describe(path)})")
    if exportable.weights_origin is None:
        print("note: no weights given, so the network is untrained (pass --weights FILE)")
    return 0


def _describe(path: Path) -> str:
    if path.suffix == ".py":
        return f"{len(path.read_text().splitlines())} lines, needs only torch"
    size = path.stat().st_size
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"
