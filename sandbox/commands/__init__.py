"""One module per subcommand; each defines `register(subparsers)` (see `sandbox.cli`)."""

from __future__ import annotations

import argparse


def add_plugin_option(parser: argparse.ArgumentParser) -> None:
    """`--plugin FILE`, repeatable: plugin files loaded before the spec's own."""
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE", help="load a plugin file first")
