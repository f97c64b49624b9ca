"""`python -m sandbox show SPEC`: the per-module table of shapes, parameters and FLOPs."""

from __future__ import annotations

import argparse
import json

from sandbox.flops import FLOPS_CONVENTION, count, format_table
from sandbox.spec import load_spec


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("show", help="print a spec's modules, shapes, parameters and FLOPs")
    parser.add_argument("spec", help="a spec YAML file")
    parser.add_argument("--json", action="store_true", help="print {params, flops, modules} as JSON")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE", help="load a plugin file first")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec, plugin_files=args.plugin)
    counts = count(spec)
    if args.json:
        print(json.dumps({**counts.as_dict(), "convention": FLOPS_CONVENTION}, indent=2))
    else:
        print(format_table(spec, counts))
    return 0
