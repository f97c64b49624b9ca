"""One module per subcommand; each defines `register(subparsers)` (see `sandbox.cli`)."""

from __future__ import annotations

import argparse


def add_device_options(parser: argparse.ArgumentParser) -> None:
    """`--device` and `--threads`, the same on every command that runs a network."""
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto, the GPU if one works)"
    )
    parser.add_argument(
        "--threads", type=int, help="CPU threads per process (default: the usable cores, shared among --workers)"
    )


def add_plugin_option(parser: argparse.ArgumentParser) -> None:
    """`--plugin FILE`, repeatable: plugin files loaded before the spec's own."""
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE", help="load a plugin file first")
