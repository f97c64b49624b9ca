"""The one validator of a spec: values checked against annotations, each error naming its YAML key.

It checks a plugin's keys against its factory's signature, and the `train:`, `data:` and `search:`
sections against their dataclasses (`parse_section`). An annotation may carry more than a type:
`Annotated[float, Check(...)]` bounds a value, `Annotated[X, Parse(fn)]` reads one (a FLOP count
written `50M`, a path). Floats must be finite everywhere: no key of a spec means anything at NaN
or infinity.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from sandbox.errors import SpecError, did_you_mean

T = TypeVar("T")


@dataclass(frozen=True)
class Check:
    """A bound on a value beyond its type: `test(value)` must hold; `must` says what it must be."""

    test: Callable[[Any], bool]
    must: str


@dataclass(frozen=True)
class Parse:
    """Reads a value that its type alone cannot check: `read(value, path)` returns it or raises a SpecError."""

    read: Callable[[Any, str], Any]


def at_least(low: float) -> Check:
    return Check(lambda v: v >= low, f">= {low}")


def above(low: float) -> Check:
    return Check(lambda v: v > low, f"> {low}")


def within(low: float, high: float, *, low_open: bool = False) -> Check:
    """`[low, high)`, or `(low, high)` with `low_open`."""
    return Check(
        lambda v: (v > low if low_open else v >= low) and v < high, f"in {'(' if low_open else '['}{low}, {high})"
    )


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """A section's field annotations, resolved once: resolving them was most of the cost of a check."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls, include_extras=True)
    return _HINTS[cls]


def parse_section(cls: type[T], raw: Any, path: str) -> T:
    """A dataclass from a spec mapping: every key a field, every value checked against its field's
    annotation; unset fields keep their defaults."""
    section = mapping(raw, path)
    hints = _hints(cls)
    allowed = [field.name for field in fields(cls)]  # type: ignore[arg-type]
    for key in section:
        if key not in allowed:
            raise SpecError(f"{path}.{key_text(key)}", unknown_key(key, sorted(allowed)))
    return cls(**{key: check_type(value, hints[key], f"{path}.{key}") for key, value in section.items()})


def replace_checked(config: T, values: Mapping[str, Any], path_of: Callable[[str], str]) -> T:
    """`config` with `values` (None: not given) put over it, each checked like the spec's at `path_of(key)`."""
    hints = _hints(type(config))
    given = {key: check_type(value, hints[key], path_of(key)) for key, value in values.items() if value is not None}
    return dataclasses.replace(config, **given)  # type: ignore[type-var]


def check_type(value: Any, annotation: Any, path: str) -> Any:
    """Check `value` against an annotation (int, float, bool, str, Literal, X | None, list[X], a
    dataclass, or any of these Annotated with Check and Parse) and return it as that type."""
    if annotation in (inspect.Parameter.empty, Any):
        return value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _annotated(value, args[0], args[1:], path)
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return parse_section(annotation, value, path)
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


def _annotated(value: Any, base: Any, extras: tuple[Any, ...], path: str) -> Any:
    parsers = [extra for extra in extras if isinstance(extra, Parse)]
    value = parsers[0].read(value, path) if parsers else check_type(value, base, path)
    for check in (extra for extra in extras if isinstance(extra, Check)):
        if not check.test(value):
            raise SpecError(path, f"must be {check.must}, got {value!r}")
    return value


def typed(value: Any, expected: type, path: str) -> Any:
    if expected is float and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise SpecError(path, f"must be a finite number, got {value}")
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
            raise SpecError(f"{prefix}{key_text(key)}", unknown_key(key, allowed))
    for key in required:
        if key not in mapping:
            raise SpecError(path or "spec", f"missing key {key!r}")


def unknown_key(key: Any, allowed: Sequence[str]) -> str:
    """The message for a key not among `allowed`: them all, and the likely one when it was a typo."""
    return f"unknown key (allowed here: {', '.join(allowed)}{did_you_mean(key, allowed)})"


def key_text(key: Any) -> str:
    """A user's key or name as shown in an error: as written if printable, else its repr, so errors stay one line."""
    return key if isinstance(key, str) and key.isprintable() and key else repr(key)


def kind_of(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )
