"""Search primitives in a spec, and turning a search space into concrete specs.

Any value of a spec may be a primitive:
    {choice: [a, b, ...]}           one of the options (options may be mappings or lists, and may
                                    hold primitives of their own); `none` as a list item drops it,
                                    so a branch `{type: none}` or a module `none` disappears
    {int: [lo, hi], step: s}        an integer (step and `log: true` optional)
    {float: [lo, hi], log: true}    a float (log and step optional)
Sampling walks the spec and asks a `Suggest` callback for each primitive it meets, naming it by
its YAML path, so the same walk serves Optuna trials, random previews and FLOP bounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from sandbox.errors import SpecError, did_you_mean
from sandbox.registry import REGISTRY
from sandbox.spec.schema import PLUGIN_SLOTS

PRIMITIVE_KEYS = {"choice": (), "int": ("step", "log"), "float": ("step", "log")}
NOT_SEARCHED = ("name", "description", "plugins", "search")  # top-level keys never sampled
DROP = "none"
Distribution = CategoricalDistribution | IntDistribution | FloatDistribution  # the kinds a primitive spells


@dataclass(frozen=True)
class Primitive:
    """One searchable dimension: its YAML path and its Optuna distribution."""

    path: str
    distribution: Distribution
    options: tuple[Any, ...] = ()  # a choice's options, in the order of the distribution's labels

    def value(self, suggested: Any) -> Any:
        """The spec value for what the sampler suggested (a label → its option)."""
        if isinstance(self.distribution, CategoricalDistribution):
            return self.options[self.distribution.choices.index(suggested)]
        return suggested

    def describe(self) -> str:
        dist = self.distribution
        if isinstance(dist, CategoricalDistribution):
            return f"choice of {len(dist.choices)}: {', '.join(map(str, dist.choices))}"
        kind = "int" if isinstance(dist, IntDistribution) else "float"
        step = f", step {dist.step}" if dist.step not in (None, 1) else ""
        return f"{kind} in [{dist.low}, {dist.high}]{step}{', log' if dist.log else ''}"


Suggest = Callable[[Primitive], Any]  # returns a value the primitive's distribution allows


def recording(suggest: Suggest, params: dict[str, Any]) -> Suggest:
    """`suggest`, writing what it suggests into `params`, keyed as Optuna's trial params are (the paths)."""

    def record(primitive: Primitive) -> Any:
        value = params[primitive.path] = suggest(primitive)
        return value

    return record


def lowest(primitive: Primitive) -> Any:
    """A `Suggest` giving each number its low end and each choice its first option."""
    dist = primitive.distribution
    return dist.choices[0] if isinstance(dist, CategoricalDistribution) else dist.low


def parse_primitive(value: Any, path: str) -> Primitive | None:
    """The primitive `value` spells, None for a plain value; malformed ones are SpecErrors."""
    if not isinstance(value, Mapping):
        return None
    kinds = [key for key in PRIMITIVE_KEYS if key in value]
    if not kinds:
        return None
    kind = kinds[0]
    allowed = (kind, *PRIMITIVE_KEYS[kind])
    for key in value:
        if key not in allowed:
            raise SpecError(
                f"{path}.{key}", f"unknown key in a {{{kind}: ...}} search primitive{did_you_mean(key, allowed)}"
            )
    if kind == "choice":
        options = value["choice"]
        if not isinstance(options, list) or not options:
            raise SpecError(f"{path}.choice", "expected a non-empty list of options")
        return Primitive(path, CategoricalDistribution(_labels(options)), tuple(options))
    bounds = value[kind]
    number = int if kind == "int" else float
    if (
        not isinstance(bounds, list)
        or len(bounds) != 2
        or not all(isinstance(b, int | float) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
        or (kind == "int" and not all(isinstance(b, int) for b in bounds))
        or bounds[0] > bounds[1]
    ):
        raise SpecError(f"{path}.{kind}", f"expected [low, high] with low <= high, both finite {number.__name__}s")
    log = value.get("log", False)
    step = value.get("step")
    if not isinstance(log, bool):
        raise SpecError(f"{path}.log", "expected true or false")
    if step is not None and (
        not isinstance(step, int | float) or isinstance(step, bool) or not math.isfinite(step) or step <= 0
    ):
        raise SpecError(f"{path}.step", "expected a positive finite number")
    dist: IntDistribution | FloatDistribution
    try:
        if kind == "int":
            dist = IntDistribution(bounds[0], bounds[1], log=log, step=int(step or 1))
        else:
            dist = FloatDistribution(float(bounds[0]), float(bounds[1]), log=log, step=step)
    except ValueError as err:
        raise SpecError(path, str(err)) from err
    return Primitive(path, dist)


def _labels(options: list[Any]) -> tuple[Any, ...]:
    """Categorical labels a sampler and a plot can show: the option itself when it is a scalar,
    the plugin type for a `{type: ...}` mapping, else its position."""
    labels: list[Any] = []
    for index, option in enumerate(options):
        if option is None or isinstance(option, bool | int | float | str):
            label = option
        elif isinstance(option, Mapping) and isinstance(option.get("type"), str):
            label = option["type"]
        else:
            label = f"#{index}"
        labels.append(label if label not in labels else f"#{index}")
    return tuple(labels)


def sample(raw: Mapping[str, Any], suggest: Suggest) -> dict[str, Any]:
    """The concrete spec mapping that `suggest` picks from the space `raw`."""
    return {
        key: value if key in NOT_SEARCHED else _resolve(value, key, suggest, _slot(PLUGIN_SLOTS, key))
        for key, value in raw.items()
    }


def _resolve(value: Any, path: str, suggest: Suggest, slot: Any) -> Any:
    primitive = parse_primitive(value, path)
    if primitive is not None:
        chosen = primitive.value(suggest(primitive))
        if not _is_nested(chosen):
            return chosen
        return _resolve(chosen, f"{path}={_label_of(primitive, chosen)}", suggest, slot)
    if isinstance(value, Mapping):
        _check_type_choice(value, path, slot)
        return {key: _resolve(item, f"{path}.{key}", suggest, _slot(slot, key)) for key, item in value.items()}
    if isinstance(value, list):
        items = [_resolve(item, f"{path}[{i}]", suggest, _slot(slot, i)) for i, item in enumerate(value)]
        return [item for item in items if not _dropped(item)]
    return value


def _is_nested(value: Any) -> bool:
    return isinstance(value, Mapping | list)


def _label_of(primitive: Primitive, option: Any) -> str:
    assert isinstance(primitive.distribution, CategoricalDistribution)  # only a choice's option is nested
    return str(primitive.distribution.choices[primitive.options.index(option)])


def _dropped(item: Any) -> bool:
    return item == DROP or (isinstance(item, Mapping) and item.get("type") == DROP)


def _slot(slot: Any, key: str | int) -> Any:
    """The part of `PLUGIN_SLOTS` under `key` (a mapping's key, or a list's index) of the node `slot`."""
    if isinstance(slot, Mapping) and isinstance(key, str):
        return slot.get(key)
    if isinstance(slot, list) and isinstance(key, int):
        return slot[0]
    return None


def _check_type_choice(mapping: Mapping[str, Any], path: str, slot: Any) -> None:
    """A key beside `type: {choice: ...}` must be taken by every plugin the choice may pick.

    `slot` is what the spec's schema puts at this place: a plugin kind, a mapping whose "type" is
    one (a branch, which may also split), or None where no call belongs."""
    kind = slot.get("type") if isinstance(slot, Mapping) else slot
    primitive = parse_primitive(mapping.get("type"), f"{path}.type")
    if (
        not isinstance(kind, str)
        or primitive is None
        or not isinstance(primitive.distribution, CategoricalDistribution)
    ):
        return
    for option in primitive.options:
        if option == DROP:
            continue
        plugin = REGISTRY.get(kind, option, f"{path}.type")
        for key in mapping:
            if key != "type" and key not in plugin.params:
                raise SpecError(
                    f"{path}.{key}",
                    f"{kind} {option!r}, one of the choices for type, does not take this key; "
                    "give each type its own keys with a choice of whole branches",
                )


def primitives(raw: Mapping[str, Any]) -> list[Primitive]:
    """Every dimension of the space, nested ones included (each option explored once)."""
    found: dict[str, Primitive] = {}

    def visit(value: Any, path: str, slot: Any) -> None:
        primitive = parse_primitive(value, path)
        if primitive is not None:
            found.setdefault(path, primitive)
            for option in primitive.options:
                if _is_nested(option):
                    visit(option, f"{path}={_label_of(primitive, option)}", slot)
        elif isinstance(value, Mapping):
            _check_type_choice(value, path, slot)
            for key, item in value.items():
                visit(item, f"{path}.{key}", _slot(slot, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                visit(item, f"{path}[{i}]", _slot(slot, i))

    for key, value in raw.items():
        if key not in NOT_SEARCHED:
            visit(value, key, _slot(PLUGIN_SLOTS, key))
    return list(found.values())


def is_space(raw: Mapping[str, Any]) -> bool:
    return bool(primitives(raw))


def signature(raw: Mapping[str, Any]) -> dict[str, str]:
    """A JSON-able fingerprint of the space, stored with a study to detect a changed space."""
    return {p.path: distribution_to_json(p.distribution) for p in primitives(raw)}
