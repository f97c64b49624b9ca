# PYTHON_ARGCOMPLETE_OK  (argcomplete's global completion looks for this marker)
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

COMMANDS = ("specs", "plugins", "show", "train", "evaluate", "search", "report", "dashboard", "export", "predict")


def settings_last(argv: Sequence[str]) -> list[str]:
    """`argv` with every `--set` and the KEY=VALUE words after it moved to the end, in order, so that
    `--set KEY=VALUE SPEC` works: a `nargs="+"` option otherwise swallows the spec ("required: spec").
    A word without `=` ends the group (it is the spec); anything after `--` stays where it is."""
    head = list(argv)
    tail: list[str] = []
    i = 0
    while i < len(head) and head[i] != "--":
        if head[i] != "--set":
            i += 1
            continue
        end = i + 1
        while end < len(head) and "=" in head[end] and not head[end].startswith("-"):
            end += 1
        if end == i + 1:  # no KEY=VALUE after it: left for --set to report
            i += 1
            continue
        tail += head[i:end]
        del head[i:end]
    if "--" in head:
        cut = head.index("--")
        return [*head[:cut], *tail, *head[cut:]]
    return [*head, *tail]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sandbox",
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


def complete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell's completion request and exit, when argcomplete (the `completion` extra) is
    installed; imported only when the shell asks (it sets _ARGCOMPLETE), so it costs nothing otherwise."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        import argcomplete
    except ImportError:
        return
    argcomplete.autocomplete(parser)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    complete(parser)
    typed = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(settings_last(typed))
    args.argv = typed  # as typed: `search` prints it to resume
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
