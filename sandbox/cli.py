"""Command-line entry point: one subcommand per module in `sandbox.commands`.

Each command module defines `register(subparsers)`, which adds its parser and sets `run`, a
function taking the parsed arguments and returning an exit code. Keeping commands in separate
modules keeps this file free of any one command's details. A command module imports only the
standard library at its top, and torch, timm or Optuna inside `run`: `--help` and `--version`
then answer without loading them (bench/cli_startup.py measures it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from sandbox import __version__
from sandbox.errors import SandboxError

COMMANDS = ("plugins", "show", "train", "evaluate", "search", "report", "dashboard", "export", "predict")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Inception Sandbox: build, train, search and export GoogLeNet-style networks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"sandbox.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"sandbox.commands.{name}":
                continue  # command not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed: `search` prints it to resume
    try:
        return int(args.run(args) or 0)
    except SandboxError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
