"""One module per subcommand; each defines `register(subparsers)` (see `sandbox.cli`)."""

from __future__ import annotations

import argparse
import glob
import os


def add_device_options(parser: argparse.ArgumentParser) -> None:
    """`--device` and `--threads`, the same on every command that runs a network."""
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto, the GPU if one works)"
    )
    parser.add_argument(
        "--threads", type=int, help="CPU threads per process (default: 1, never far from the best on a shared machine)"
    )


def add_plugin_option(parser: argparse.ArgumentParser) -> None:
    """`--plugin FILE`, repeatable: plugin files loaded before the spec's own."""
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE", help="load a plugin file first")


def add_spec_argument(parser: argparse.ArgumentParser, help: str, *, optional: bool = False) -> None:
    """SPEC: a file path, or a shipped spec's name (`quickstart`, `googlenet`; `sandbox specs` lists
    them); with argcomplete installed, the shell completes both."""
    action = parser.add_argument("spec", nargs="?" if optional else None, type=spec_file, help=help)
    action.completer = complete_spec  # type: ignore[attr-defined]  # read by argcomplete only


def spec_file(text: str) -> str:
    """The path a SPEC argument names: a path that exists wins over a shipped name."""
    from sandbox.spec.shipped import resolve_spec

    return str(resolve_spec(text))


def complete_spec(prefix: str, **_: object) -> list[str]:
    """Shell completions for SPEC: the shipped names, then the YAML files and folders `prefix` starts."""
    from sandbox.spec.shipped import list_specs

    paths = sorted(glob.glob(glob.escape(prefix) + "*"))
    files = [
        f"{path}/" if os.path.isdir(path) else path
        for path in paths
        if os.path.isdir(path) or path.endswith((".yaml", ".yml"))
    ]
    return [*list_specs(glob.escape(prefix) + "*"), *files]
