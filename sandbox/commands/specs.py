"""`sandbox specs [PATTERN]`: the specs shipped with the package, which every command takes by name.

A network's row has its parameters and FLOPs; a search space's the FLOPs of its smallest and
largest candidates, found by coordinate descent (seconds per space, so rows print as they come).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("specs", help="list the shipped specs, which any command takes by name")
    parser.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern on the name, e.g. 'inception_*'")
    parser.add_argument("--names", action="store_true", help="names only, without counting (instant)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sandbox.errors import SpecError
    from sandbox.spec.shipped import shipped_specs

    specs = shipped_specs(args.pattern)
    if not specs:
        raise SpecError("PATTERN", f"no shipped spec matches {args.pattern!r} (`sandbox specs` lists them all)")
    if args.names:
        print("\n".join(specs))
        return 0
    from sandbox.model.flops import FLOPS_CONVENTION

    print(f"{'name':<22} {'kind':<8} {'params':>10}  FLOPs per image")
    for name, path in specs.items():
        print(f"{name:<22} {_row(path)}", flush=True)
    print(FLOPS_CONVENTION)
    return 0


def _row(path: Path) -> str:
    """Kind, parameters and FLOPs of one spec; a space's FLOPs are its smallest to largest candidate."""
    from sandbox.model.flops import count, readable
    from sandbox.space.bounds import largest_flops, smallest_flops
    from sandbox.spec.load import read_yaml, validate
    from sandbox.spec.primitives import primitives

    raw = read_yaml(path)
    if primitives(raw):
        low, high = smallest_flops(raw, path.parent), largest_flops(raw, path.parent)
        span = f"{(low or 0) / 1e6:,.1f} to {(high or 0) / 1e6:,.1f} MFLOPs"
        return f"{'space':<8} {'':>10}  {span}"
    counts = count(validate(raw, base=path.parent, source=path))
    return f"{'network':<8} {readable(counts.params):>10}  {counts.flops / 1e6:,.1f} MFLOPs"
