"""The sandbox's own error types.

Every problem a user can cause (a bad spec, a missing dataset, a bad storage URL) is raised as a
`SandboxError` whose message is one line; the CLI prints it and exits 2, never a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

MAX_MESSAGE = 2000  # characters of an error line: a value quoted whole (a 100,000-node --set) would fill megabytes


class SandboxError(Exception):
    """A user-facing error: `str(err)` is one complete, self-explaining line, cut at MAX_MESSAGE."""

    def __init__(self, message: str = "") -> None:
        super().__init__(shorten(one_line(message)))


def one_line(message: str) -> str:
    """Line breaks written as `\\n`: a quoted value (a multi-line `--set` value) must not split the line."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


def shorten(message: str, limit: int = MAX_MESSAGE) -> str:
    """`message` cut in its middle when longer than `limit`: the start names the key, the end says what to do."""
    if len(message) <= limit:
        return message
    keep = (limit - 40) // 2
    return f"{message[:keep]} ...[{len(message) - 2 * keep:,} characters cut]... {message[len(message) - keep :]}"


class SpecError(SandboxError):
    """A problem in a spec, located by its YAML path (`stages[1].modules[0].branches[2].type`)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class PluginError(SandboxError):
    """A plugin that cannot be loaded or registered (bad file, duplicate name)."""


def describe(err: BaseException) -> str:
    """`Type: first line` of a foreign exception, so a SandboxError wrapping it stays one line."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """`; did you mean 'lr'?` when one of `choices` is close to `word` (a typo), else "": the
    suffix every "unknown key" or "unknown name" error ends with."""
    hint = difflib.get_close_matches(str(word), list(choices), n=1)
    return f"; did you mean {hint[0]!r}?" if hint else ""
