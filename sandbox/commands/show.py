"""`sandbox show SPEC`: the per-module table of shapes, parameters and FLOPs.

For a search space it shows the space instead: its dimensions, the FLOPs of its smallest and
largest candidates, and how much of it fits the budget.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sandbox.commands import add_plugin_option, add_spec_argument
from sandbox.spec.overrides import add_set_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("show", help="print a spec's modules, shapes, parameters and FLOPs")
    add_spec_argument(parser, "a spec YAML file or shipped name (concrete, or a search space)")
    parser.add_argument("--json", action="store_true", help="print {params, flops, modules} as JSON")
    parser.add_argument("--budget", help="FLOP budget to measure a space against (default: the spec's)")
    add_plugin_option(parser)
    add_set_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sandbox.spec.load import load_plugins, read_yaml
    from sandbox.spec.overrides import apply_overrides, blaming

    raw = apply_overrides(read_yaml(args.spec), args.set)  # read once: it may be a pipe
    with blaming(args.set):  # an error at a key --set gave says so
        load_plugins(raw, Path(args.spec).resolve().parent, args.plugin)
        return _show(args, raw)


def _show(args: argparse.Namespace, raw: dict[str, Any]) -> int:
    """The space's dimensions and FLOP range, or the network's table."""
    from sandbox.model.flops import FLOPS_CONVENTION, count, format_table
    from sandbox.space.bounds import space_flops
    from sandbox.spec.load import validate
    from sandbox.spec.primitives import primitives
    from sandbox.spec.search import search_config

    dimensions = primitives(raw)
    if dimensions:
        config = search_config(raw.get("search") or {}).with_overrides(budget=args.budget)
        bounds = space_flops(raw, Path(args.spec).resolve().parent, config.budget, floor=config.floor_flops)
        if args.json:
            print(json.dumps({"dimensions": {d.path: d.describe() for d in dimensions}, **vars(bounds)}, indent=2))
            return 0
        print(f"search space {raw.get('name', Path(args.spec).stem)!r}: {len(dimensions)} dimensions")
        for dimension in dimensions:
            print(f"  {dimension.path:<58} {dimension.describe()}")
        print(f"smallest candidate: {bounds.smallest / 1e6:,.2f} MFLOPs; largest: {bounds.largest / 1e6:,.2f} MFLOPs")
        if bounds.within_budget is not None:
            assert config.budget is not None  # space_flops measures within_budget only against a budget
            print(
                f"budget {config.budget / 1e6:,.2f} MFLOPs: {bounds.within_budget:.0%} of "
                f"{bounds.samples} random candidates fit"
            )
        if bounds.within_band is not None:
            assert config.floor_flops is not None
            print(
                f"band {config.floor_flops / 1e6:,.2f}-{(config.budget or 0) / 1e6:,.2f} MFLOPs (floor to budget): "
                f"{bounds.within_band:.0%} of {bounds.samples} random candidates fall in it"
            )
        print(FLOPS_CONVENTION)
        return 0
    spec = validate(raw, base=Path(args.spec).resolve().parent, source=Path(args.spec))
    counts = count(spec)
    if args.json:
        print(json.dumps({**counts.as_dict(), "convention": FLOPS_CONVENTION}, indent=2))
    else:
        print(format_table(spec, counts))
    return 0
