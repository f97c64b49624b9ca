"""Small checks shared by every section of a spec; each error names the YAML key it is about."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from sandbox.errors import SpecError


def check_type(value: Any, annotation: Any, path: str) -> Any:
    """Check `value` against a factory annotation (int, float, bool, str, Literal, X | None, list[X])."""
    if annotation in (inspect.Parameter.empty, Any):
        return value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return check_type(value, option, path)
            except SpecError as err:
                errors.append(err)
        raise errors[0]
    if origin is typing.Literal:
        if value not in args:
            raise SpecError(path, f"expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise SpecError(path, f"expected a list, got {kind_of(value)}")
        item = args[0] if args else Any
        return [check_type(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(annotation, type):
        return typed(value, annotation, path)
    return value


def typed(value: Any, expected: type, path: str) -> Any:
    if expected is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, bool):
        raise SpecError(path, f"expected an integer, got {value!r}")
    if not isinstance(value, expected):
        article = "an" if expected.__name__[0] in "aeiou" else "a"
        raise SpecError(path, f"expected {article} {expected.__name__}, got {kind_of(value)} {value!r}")
    return value


def positive_int(value: Any, path: str, maximum: int | None = None) -> int:
    value = typed(value, int, path)
    if value < 1:
        raise SpecError(path, f"must be positive, got {value}")
    if maximum is not None and value > maximum:
        raise SpecError(path, f"must be at most {maximum}, got {value}")
    return value


def probability(value: Any, path: str) -> float:
    value = typed(value, float, path)
    if not 0.0 <= value < 1.0:
        raise SpecError(path, f"must be in [0, 1), got {value}")
    return value


def mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(path, f"expected a mapping, got {kind_of(value)}")
    return value


def list_at(raw: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        raise SpecError(path, f"expected a list, got {kind_of(value)}")
    return value


def check_keys(mapping: Mapping[str, Any], allowed: Sequence[str], path: str, required: Sequence[str] = ()) -> None:
    prefix = f"{path}." if path else ""
    for key in mapping:
        if key not in allowed:
            raise SpecError(f"{prefix}{key_text(key)}", f"unknown key (allowed here: {', '.join(allowed)})")
    for key in required:
        if key not in mapping:
            raise SpecError(path or "spec", f"missing key {key!r}")


def key_text(key: Any) -> str:
    """A user's key or name as shown in an error: as written if printable, else its repr, so errors stay one line."""
    return key if isinstance(key, str) and key.isprintable() and key else repr(key)


def kind_of(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )
