"""`sandbox export SOURCE`: a standalone model file from a run directory or a spec.

SOURCE is a `sandbox train` run directory, a `sandbox search` run directory (its best trial), or a
spec file (with `--weights FILE` for trained weights, without for an untrained network).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from sandbox.commands import add_plugin_option

SUFFIXES = {"py": ".py", "pt2": ".pt2", "onnx": ".onnx"}


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
        choices=tuple(SUFFIXES),
        default="py",
        help="py: Python file + weights beside it (default); pt2: torch.export program; onnx: needs the onnx extra",
    )
    parser.add_argument("--out", type=Path, help="file to write (default: the spec's name, in the current directory)")
    parser.add_argument("--weights", type=Path, help="weights (.safetensors or .pt state dict) instead of the run's")
    add_plugin_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sandbox.export import resolve, write

    exportable = resolve(args.source, weights=args.weights, plugin_files=args.plugin)
    out = args.out or Path(re.sub(r"\W", "_", exportable.spec.name) + SUFFIXES[args.format])
    for path in write(exportable, out, args.format):
        print(f"wrote {path} ({_describe(path)})")
    if exportable.weights_origin is None:
        print("note: no weights given, so the network is untrained (pass --weights FILE)")
    return 0


def _describe(path: Path) -> str:
    if path.suffix == ".py":
        return f"{len(path.read_text().splitlines())} lines, needs only torch"
    size = path.stat().st_size
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"
