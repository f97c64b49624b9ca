"""`sandbox plugins`: every registered plugin, its parameters and where it came from."""

from __future__ import annotations

import argparse

from sandbox.commands import add_plugin_option
from sandbox.registry import KINDS, REGISTRY


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plugins", help="list registered stems, branches and downsamples")
    add_plugin_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from sandbox.spec.load import load_plugins

    load_plugins(command_line=args.plugin)
    for kind in KINDS:
        print(f"{kind} plugins:")
        for plugin in REGISTRY.all(kind):
            params = ", ".join(p.describe() for p in plugin.params.values()) or "(no parameters)"
            print(f"  {plugin.name:<12} {params}")
            print(f"  {'':<12} from {plugin.source}")
    return 0
