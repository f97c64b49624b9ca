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


def spec_file(text: str) -> str:
    """The `type` of a SPEC argument: a file path, or a shipped spec's name (`quickstart`, `googlenet`;
    `sandbox specs` lists them). A path that exists wins over a name."""
    from sandbox.spec.shipped import resolve_spec

    return str(resolve_spec(text))
