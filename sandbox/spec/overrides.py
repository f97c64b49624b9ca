"""`--set KEY=VALUE`: any key of a spec overridden from the command line, on `train` and `search` alike.

KEY is a dotted path into the spec's mapping as written, list items by index
(`stages.0.modules.0.repeat`); VALUE is read as YAML, so `0.05`, `true`, `[1, 3]`, `null` and a
search primitive `{float: [0.01, 0.1], log: true}` mean what they would in the file. The override
is put into the raw mapping before anything reads it, so it is checked exactly as the file's own
value would be; a check that fails on it names its key and says it came from --set. A key the spec
does not have yet is added (intermediate mappings too), which is how a default is overridden; an
unknown one is then refused by the validator, which lists the keys allowed there.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.errors import SpecError
from sandbox.spec.checks import kind_of

if TYPE_CHECKING:
    from sandbox.spec.schema import Spec

_SEGMENT = re.compile(r"[^.\s=]+")
PRIMITIVES = ("choice", "int", "float")  # a mapping with one of these keys is a search primitive


def apply_overrides(raw: Mapping[str, Any], settings: Sequence[str]) -> dict[str, Any]:
    """A deep copy of `raw` with each `KEY=VALUE` of `settings` set, in order."""
    result = copy.deepcopy(dict(raw))
    for setting in settings:
        keys, value = parse_setting(setting)
        _put(result, keys, value, f"--set {'.'.join(map(str, keys))}")
    return result


def as_settings(
    overrides: Mapping[str, Any] | Sequence[str] | None, train_keys: Mapping[str, Any] | None = None
) -> list[str]:
    """The Python API's overrides as `--set KEY=VALUE` strings (JSON values are YAML), so that a call
    is checked and blamed as the command line is; `overrides` may be such strings already, and
    `train_keys` are `train:` keys (`epochs=5` is `train.epochs=5`)."""
    train = {f"train.{key}": value for key, value in (train_keys or {}).items()}
    if overrides is None or isinstance(overrides, Mapping):
        return [f"{key}={json.dumps(value)}" for key, value in (dict(overrides or {}) | train).items()]
    return [*overrides, *(f"{key}={json.dumps(value)}" for key, value in train.items())]


def parse_setting(setting: str) -> tuple[list[str | int], Any]:
    """`a.0.b=VALUE` → (["a", 0, "b"], VALUE read as YAML, within a spec file's limits: an alias
    bomb or deep nesting given on the command line is refused as it would be in the file)."""
    from sandbox.spec.load import parse_yaml  # here, not at the top: the commands import this module for --help too

    key, equals, text = setting.partition("=")
    segments = key.strip().split(".")
    if not equals or not all(_SEGMENT.fullmatch(s) for s in segments):
        raise SpecError("--set", f"expected KEY=VALUE with KEY a dotted path like train.lr, got {setting!r}")
    return [int(s) if s.isdigit() else s for s in segments], parse_yaml(text, f"--set {key}", file=False)


def spec_path(keys: Sequence[str | int]) -> str:
    """The path as the validator names it: `stages[0].modules[0].repeat`."""
    text = ""
    for key in keys:
        text += f"[{key}]" if isinstance(key, int) else f".{key}" if text else key
    return text


def _put(node: Any, keys: Sequence[str | int], value: Any, flag: str) -> None:
    for depth, key in enumerate(keys):
        here = spec_path(keys[:depth]) or "the spec"
        last = depth == len(keys) - 1
        if isinstance(node, list):
            if not isinstance(key, int) or not 0 <= key < len(node):
                what = f"index {key}" if isinstance(key, int) else f"key {key!r}"
                raise SpecError(flag, f"{here} is a list of {len(node)}: no {what} in it")
            if last:
                node[key] = value
            else:
                node = node[key]
            continue
        if not isinstance(node, dict):
            raise SpecError(flag, f"{here} is {kind_of(node)} {node!r}, not a mapping with keys")
        if any(k in node for k in PRIMITIVES):
            raise SpecError(flag, f"{here} is a search primitive: set it whole (--set {here}=...)")
        if last:
            node[key] = value
        else:
            node = node.setdefault(key, {})


def load_overridden(path: str | Path, settings: Sequence[str], *, plugin_files: Sequence[str | Path] = ()) -> Spec:
    """`load_spec(path)` with `settings` put over the file's values before it is checked."""
    from sandbox.spec.load import load_plugins, read_yaml, refuse_space, validate
    from sandbox.spec.shipped import resolve_spec

    path = resolve_spec(path)
    raw = apply_overrides(read_yaml(path), settings)
    load_plugins(command_line=plugin_files)
    with blaming(settings):
        refuse_space(raw, path)
        return validate(raw, base=path.resolve().parent, source=path)


@contextmanager
def blaming(settings: Sequence[str]) -> Iterator[None]:
    """A SpecError raised inside about a key that an override set (or something under it) says so."""
    try:
        yield
    except SpecError as err:
        for setting in settings:
            keys, _ = parse_setting(setting)
            path = spec_path(keys)
            if err.path == path or err.path.startswith((f"{path}.", f"{path}[")):
                raise SpecError(err.path, f"{err.message} (set by --set {setting})") from err
        raise


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """`--set KEY=VALUE [KEY=VALUE ...]`, repeatable, for the commands that read a spec."""
    parser.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override any spec key, e.g. --set train.lr=0.05 input.size=96 (values read as YAML; list items by index)",
    )
