"""A search space's layout for the supernet: the slots its plugin calls fill, every alternative a
slot can hold, and which alternatives a trial's params select.

A slot is one place of the space that a plugin call fills in every candidate that has it: the
stem, a stage's downsample, a branch of a module copy (`repeat:` makes copies `#0`, `#1`, ...). It
is named by its YAML path in the space, with the labels of the enclosing choices
(`stages[2]=#0.modules[0]#0.branches[1]`), so the same slot of two candidates is the same layer of
the supernet. Within a slot, calls of one plugin with the same non-width parameters are one
alternative (`alternative_key`), whose widths may share weights. `none` options drop a stage, a
module or a branch; whatever else the supernet cannot hold is refused here, as a SpecError at its key.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from optuna.distributions import CategoricalDistribution, IntDistribution
from torch import nn

from sandbox.errors import SpecError
from sandbox.model.builder import MetaNorms
from sandbox.spec.load import _call, validate
from sandbox.spec.primitives import (
    DROP,
    NOT_SEARCHED,
    Primitive,
    Suggest,
    parse_primitive,
    primitives,
    recording,
    sample,
)
from sandbox.spec.schema import SPLIT_KEYS, WIDTH_KEYS, Call, ModuleSpec, Spec

Shape = tuple[int, int, int]
AltKey = tuple[str, str, tuple[tuple[str, str], ...]]  # kind, plugin, non-width params (repr'd)
Widths = tuple[tuple[str, int], ...]  # a call's width parameters, sorted by key
MAX_LOCAL = 4096  # concrete alternatives of one slot: past this, enumerating them is no longer cheap
FIXED_KEYS = ("input", "classes", "normalize", "defaults", "aux")  # searched, these would change every slot
MODULE_SEARCHED = ("branches", "repeat")  # a module's own keys the supernet lets a space search


def alternative_key(call: Call) -> AltKey:
    """What makes two calls at one slot the same layers up to their widths."""
    fixed = tuple(sorted((k, repr(v)) for k, v in call.params.items() if not is_width(k, v)))
    return call.kind, call.type, fixed


def widths_of(call: Call) -> Widths:
    return tuple(sorted((k, v) for k, v in call.params.items() if is_width(k, v)))


def is_width(key: str, value: Any) -> bool:
    return key in WIDTH_KEYS and isinstance(value, int) and not isinstance(value, bool)


@functools.lru_cache(maxsize=4096)
def _meta_module(factory: Callable[..., nn.Module], in_channels: int, params: tuple[tuple[str, Any], ...]) -> nn.Module:
    with torch.device("meta"):
        return factory(in_channels, **dict(params))


def narrow_module(call: Call, in_channels: int) -> nn.Module:
    """The call's module on the meta device (cached): its shapes and attributes, never its weights."""
    return _meta_module(call.plugin.factory, in_channels, _hashable(call.params))


def _hashable(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    def freeze(value: Any) -> Any:
        return tuple(map(freeze, value)) if isinstance(value, list) else value

    return tuple(sorted((k, freeze(v)) for k, v in params.items()))


def out_shape(call: Call, shape: Shape) -> Shape | None:
    """What the call gives for `shape`, from a meta probe (cached: a search selects thousands of
    subnets from a few hundred calls); None when it cannot take that input."""
    return _probe(call.plugin.factory, _hashable(call.params), shape)


@functools.lru_cache(maxsize=16384)
def _probe(factory: Callable[..., nn.Module], params: tuple[tuple[str, Any], ...], shape: Shape) -> Shape | None:
    try:
        module = _meta_module(factory, shape[0], params)
        with torch.no_grad(), MetaNorms():
            out = module.eval()(torch.empty(1, *shape, device="meta"))
    except Exception:  # a combination no valid candidate has (the layout over-approximates)
        return None
    return (out.shape[1], out.shape[2], out.shape[3])


# ---------------------------------------------------------------------------- a chosen subnet


@dataclass(frozen=True)
class Use:
    """One plugin call of a subnet, at its slot, on its input width."""

    slot: str
    call: Call
    in_channels: int


@dataclass(frozen=True)
class ModuleUse:
    slot: str
    spec: ModuleSpec  # combine, scale and act
    branches: tuple[Use, ...]
    in_channels: int
    width: int  # the branches' concatenated width


@dataclass(frozen=True)
class StageUse:
    downsample: Use | None
    modules: tuple[ModuleUse, ...]


@dataclass(frozen=True)
class Subnet:
    """A candidate of the space as the supernet runs it."""

    params: dict[str, Any]  # the Optuna params of a trial that samples it
    spec: Spec
    stem: Use
    stages: tuple[StageUse, ...]
    features: int  # the head's input width

    def uses(self) -> Iterator[tuple[str, Use]]:
        """Each call with its module's name in a standalone `build(spec)` network."""
        yield "stem", self.stem
        for s, stage in enumerate(self.stages):
            if stage.downsample is not None:
                yield f"stages.{s}.downsample", stage.downsample
            for b, module in enumerate(stage.modules):
                for k, use in enumerate(module.branches):
                    yield f"stages.{s}.blocks.{b}.branches.{k}", use


def params_suggest(params: Mapping[str, Any]) -> Suggest:
    """A `Suggest` that replays a trial's params; a primitive they lack is a SpecError at its path."""

    def suggest(primitive: Primitive) -> Any:
        if primitive.path not in params:
            raise SpecError(primitive.path, "the params select no value for this primitive of the space")
        return params[primitive.path]

    return suggest


def select(space: Mapping[str, Any], params: Mapping[str, Any], base: Path) -> Subnet:
    """The subnet the trial params `params` pick from `space` (keys: the primitives' YAML paths)."""
    suggest = params_suggest(params)
    raw = sample(space, suggest)
    raw.pop("search", None)
    spec = validate(raw, base=base)
    stages_slots = _slots(space, suggest)
    if len(stages_slots) != len(spec.stages):
        raise AssertionError(f"{len(stages_slots)} stages in the layout, {len(spec.stages)} in the spec")
    used = {p.path: params[p.path] for p in primitives(space) if p.path in params}
    shape: Shape = (spec.channels, spec.size, spec.size)
    stem, shape = _use("stem", spec.stem, shape)
    stages: list[StageUse] = []
    for (down_slot, module_slots), stage in zip(stages_slots, spec.stages, strict=True):
        downsample = None
        if stage.downsample is not None:
            downsample, shape = _use(down_slot or "", stage.downsample, shape)
        modules: list[ModuleUse] = []
        for (slot, branch_slots), module in zip(module_slots, stage.modules, strict=True):
            branches = [_use(b, call, shape) for b, call in zip(branch_slots, module.calls, strict=True)]
            width = sum(out[0] for _, out in branches)
            modules.append(ModuleUse(slot, module, tuple(use for use, _ in branches), shape[0], width))
            shape = shape if module.combine == "residual" else (width, *branches[0][1][1:])
        stages.append(StageUse(downsample, tuple(modules)))
    return Subnet(used, spec, stem, tuple(stages), shape[0])


def _use(slot: str, call: Call, shape: Shape) -> tuple[Use, Shape]:
    out = out_shape(call, shape)
    if out is None:
        raise SpecError(call.path, "does not build on its input, yet the spec validated")
    return Use(slot, call, shape[0]), out


def _slots(space: Mapping[str, Any], suggest: Suggest) -> list[tuple[str | None, list[tuple[str, list[str]]]]]:
    """The slots of the candidate `suggest` picks: per stage, its downsample's slot and, per
    module copy, its own slot and its branches' slots, in the order the validated spec has them."""
    stages: list[tuple[str | None, list[tuple[str, list[str]]]]] = []
    for i, item in enumerate(space["stages"]):
        stage, path = _picked(item, f"stages[{i}]", suggest)
        if stage is None:
            continue
        down = f"{path}.downsample" if stage.get("downsample") is not None else None
        modules: list[tuple[str, list[str]]] = []
        for j, module_item in enumerate(stage["modules"]):
            module, mpath = _picked(module_item, f"{path}.modules[{j}]", suggest)
            if module is None:
                continue
            repeat = _resolved(module.get("repeat", 1), f"{mpath}.repeat", suggest)
            kept = [
                k
                for k, b in enumerate(module["branches"])
                if not _dropped(_resolved(b, f"{mpath}.branches[{k}]", suggest))
            ]
            modules.extend((f"{mpath}#{r}", [f"{mpath}#{r}.branches[{k}]" for k in kept]) for r in range(repeat))
        stages.append((down, modules))
    return stages


def _resolved(value: Any, path: str, suggest: Suggest) -> Any:
    """`value` at `path` of the space, resolved as `sample` resolves it there."""
    return sample({path: value}, suggest)[path]


def _picked(item: Any, path: str, suggest: Suggest) -> tuple[Any, str]:
    """A stage or module item with its choices resolved one level (its own primitives stay), and
    its path as `sample` names the primitives inside it; None when `none` drops it."""
    primitive = parse_primitive(item, path)
    while primitive is not None:
        label = suggest(primitive)
        item = primitive.value(label)
        if not isinstance(item, Mapping | list):
            return (None, path) if item == DROP else (item, path)
        path = f"{path}={label}"
        primitive = parse_primitive(item, path)
    return item, path


def _dropped(item: Any) -> bool:
    return item == DROP or (isinstance(item, Mapping) and item.get("type") == DROP)


# ---------------------------------------------------------------------------- every subnet at once


@dataclass
class Alternative:
    """One alternative of a slot: its calls (one per combination of widths and input width), and
    the widest input and widths any of them has, which the shared weights are allocated for."""

    call: Call  # any one of its calls: the plugin and the non-width parameters
    combos: dict[tuple[int, Widths], Call] = field(default_factory=dict)

    def add(self, call: Call, in_channels: int) -> None:
        self.combos.setdefault((in_channels, widths_of(call)), call)

    @property
    def widest(self) -> tuple[int, dict[str, int]]:
        widths: dict[str, int] = {}
        for _, combo in self.combos:
            for key, value in combo:
                widths[key] = max(widths.get(key, 0), value)
        return max(in_ch for in_ch, _ in self.combos), widths


@dataclass
class Layout:
    """Every slot of a space with its alternatives, the residual projections' widest shapes, and
    the head's widest input: what the supernet allocates."""

    slots: dict[str, dict[AltKey, Alternative]] = field(default_factory=dict)
    projections: dict[str, tuple[int, int]] = field(default_factory=dict)  # slot: (widest in, widest out)
    features: int = 0

    def add(self, slot: str, call: Call, in_channels: int) -> None:
        key = alternative_key(call)
        self.slots.setdefault(slot, {}).setdefault(key, Alternative(call)).add(call, in_channels)


def layout(space: Mapping[str, Any], base: Path) -> Layout:
    """Every slot and alternative of `space`, found by enumerating each slot's own primitives and
    carrying the set of input shapes a slot may see (a superset: combinations no candidate has
    are probed too, and those that do not build are left out)."""
    _refuse_fixed(space)
    first = validate(_without_search(sample(space, _first)), base=base)  # the space's ordinary errors first
    defaults: Mapping[str, Any] = space.get("defaults") or {}
    found = Layout()
    shapes = _calls(found, "stem", "stem", space["stem"], {(first.channels, first.size, first.size)}, defaults, {})
    for i, item in enumerate(_listed(space["stages"], "stages")):
        after: set[Shape] = set()
        for stage, path in _options(item, f"stages[{i}]"):
            after |= shapes if stage is None else _stage(found, stage, path, shapes, defaults)
        shapes = after
    if not shapes:
        raise SpecError("stages", "no candidate of this space builds")
    found.features = max(c for c, _, _ in shapes)
    return found


def _first(primitive: Primitive) -> Any:
    dist = primitive.distribution
    return dist.choices[0] if isinstance(dist, CategoricalDistribution) else dist.low


def _without_search(raw: dict[str, Any]) -> dict[str, Any]:
    raw.pop("search", None)
    return raw


def _refuse_fixed(space: Mapping[str, Any]) -> None:
    for key in FIXED_KEYS:
        found = primitives({key: space[key]}) if key in space else []
        if found:
            raise SpecError(found[0].path, "the supernet needs this fixed: every layer depends on it")
    if space.get("aux"):
        raise SpecError("aux", "the supernet holds no auxiliary heads; leave them out of a one-shot search")
    head = space.get("head") or {}
    if isinstance(head, Mapping) and head.get("fc", True) is not True:
        raise SpecError("head.fc", "the supernet holds only the linear head (fc: true)")


def _listed(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise SpecError(path, "the supernet needs a list here, not a search primitive: search its items instead")
    return value


def _options(item: Any, path: str) -> list[tuple[Mapping[str, Any] | None, str]]:
    """Each way a stage or module item resolves one level: (the mapping, its path), None for `none`."""
    primitive = parse_primitive(item, path)
    if primitive is None:
        return [(item, path)]
    if not isinstance(primitive.distribution, CategoricalDistribution):
        raise SpecError(path, "a number cannot be a stage or a module")
    found: list[tuple[Mapping[str, Any] | None, str]] = []
    for label, option in zip(primitive.distribution.choices, primitive.options, strict=True):
        if option == DROP:
            found.append((None, path))
        elif isinstance(option, Mapping) or parse_primitive(option, f"{path}={label}") is not None:
            found.extend(_options(option, f"{path}={label}"))
        else:
            raise SpecError(path, f"option {label!r} is not a stage or module mapping")
    return found


def _enumerated(value: Any, path: str) -> list[Any]:
    """Every value `value` at `path` resolves to, by depth-first enumeration of its primitives."""
    results: list[Any] = []
    pending: list[dict[str, Any]] = [{}]
    while pending:
        fixed = pending.pop()
        made: dict[str, Any] = {}

        def suggest(primitive: Primitive, fixed: dict[str, Any] = fixed, made: dict[str, Any] = made) -> Any:
            if primitive.path not in fixed:
                options = _values(primitive)
                pending.extend({**made, primitive.path: other} for other in options[1:])
                fixed = {**fixed, primitive.path: options[0]}
            made[primitive.path] = fixed[primitive.path]
            return fixed[primitive.path]

        results.append(_resolved(value, path, suggest))
        if len(results) > MAX_LOCAL:
            raise SpecError(path, f"more than {MAX_LOCAL} alternatives: too many for the supernet to enumerate")
    return results


def _values(primitive: Primitive) -> list[Any]:
    dist = primitive.distribution
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution) and not dist.log:
        return list(range(dist.low, dist.high + 1, dist.step))
    raise SpecError(primitive.path, "the supernet enumerates choices and linear ints only, not a float or log range")


def _calls(
    found: Layout,
    kind: str,
    slot: str,
    value: Any,
    shapes: set[Shape],
    defaults: Mapping[str, Any],
    imposed: Mapping[str, tuple[Any, str]],
    *,
    may_drop: bool = False,
) -> set[Shape]:
    """Record every call `value` at `slot` can be on every input shape; the shapes they give (an
    empty shape, width 0, for a dropped branch)."""
    out: set[Shape] = set()
    for resolved in _enumerated(value, _space_path(slot)):
        if may_drop and _dropped(resolved):
            out |= {(0, h, w) for _, h, w in shapes}
            continue
        if isinstance(resolved, Mapping) and any(key in resolved for key in SPLIT_KEYS):
            raise SpecError(_space_path(slot), "the supernet holds no split branches (trunk/split)")
        call = _call(kind, resolved, _space_path(slot), defaults, imposed)
        for shape in shapes:
            given = out_shape(call, shape)
            if given is not None:
                found.add(slot, call, shape[0])
                out.add(given)
    return out


def _space_path(slot: str) -> str:
    """The YAML path (the primitives' prefix) of a slot: its module copy's `#r` left out."""
    head, _, tail = slot.partition("#")
    return head + tail[tail.index(".") :] if tail and "." in tail else head


def _stage(
    found: Layout, stage: Mapping[str, Any], path: str, shapes: set[Shape], defaults: Mapping[str, Any]
) -> set[Shape]:
    if stage.get("downsample") is not None:
        shapes = _calls(found, "downsample", f"{path}.downsample", stage["downsample"], shapes, defaults, {})
    for j, item in enumerate(_listed(stage.get("modules"), f"{path}.modules")):
        after: set[Shape] = set()
        for module, mpath in _options(item, f"{path}.modules[{j}]"):
            after |= shapes if module is None else _module(found, module, mpath, shapes, defaults)
        shapes = after
    return shapes


def _module(
    found: Layout, module: Mapping[str, Any], path: str, shapes: set[Shape], defaults: Mapping[str, Any]
) -> set[Shape]:
    """The shapes after a module entry, each repeat count included."""
    for key, value in module.items():
        if key not in MODULE_SEARCHED and primitives({f"{path}.{key}": value}):
            raise SpecError(f"{path}.{key}", "the supernet searches only a module's branches and repeat")
    repeats = {int(r) for r in _enumerated(module.get("repeat", 1), f"{path}.repeat")}
    imposed: dict[str, tuple[Any, str]] = {}
    if module.get("stride", 1) > 1:
        imposed["stride"] = (module["stride"], f"{path}.stride")
    if module.get("padding") is not None:
        imposed["padding"] = (module["padding"], f"{path}.padding")
    residual = module.get("combine", "concat") == "residual"
    after: set[Shape] = set()
    for r in range(max(repeats)):
        copy = f"{path}#{r}"
        sums: set[Shape] = set()
        for shape in shapes:
            widths: set[Shape] = {(0, shape[1], shape[2])}
            for k, branch in enumerate(_listed(module.get("branches"), f"{path}.branches")):
                given = _calls(
                    found, "branch", f"{copy}.branches[{k}]", branch, {shape}, defaults, imposed, may_drop=True
                )
                widths = {(c + g, gh, gw) for c, _, _ in widths for g, gh, gw in given}
            if residual:
                widest = max(c for c, _, _ in widths)
                old = found.projections.get(copy, (0, 0))
                found.projections[copy] = (max(old[0], widest), max(old[1], shape[0]))
                sums.add(shape)
            else:
                sums |= {w for w in widths if w[0] > 0}
        shapes = sums
        if r + 1 in repeats:
            after |= shapes
    return after


# ---------------------------------------------------------------------------- a concrete spec's params


def params_of(space: Mapping[str, Any], concrete: Mapping[str, Any]) -> dict[str, Any]:
    """The trial params under which `space` samples the concrete spec `concrete` (its name,
    plugins and search section aside), so a subnet can be selected by its spec; a spec that is
    no candidate of the space is a SpecError at the first key that cannot match."""
    params: dict[str, Any] = {}
    for key, value in space.items():
        if key in NOT_SEARCHED:
            continue
        if key not in concrete:
            raise SpecError(key, "the spec lacks this key of the space")
        if not _unify(value, concrete[key], key, params):
            raise SpecError(key, "no choice of the space gives the spec's value here")
    extra = [key for key in concrete if key not in space and key not in NOT_SEARCHED]
    if extra:
        raise SpecError(extra[0], "the space has no such key")
    return params


def _unify(value: Any, concrete: Any, path: str, params: dict[str, Any]) -> bool:
    """Whether `value` at `path` can resolve to `concrete`; the params that make it so go into `params`."""
    primitive = parse_primitive(value, path)
    if primitive is None:
        if isinstance(value, Mapping):
            return (
                isinstance(concrete, Mapping)
                and value.keys() == concrete.keys()
                and all(_unify(value[k], concrete[k], f"{path}.{k}", params) for k in value)
            )
        if isinstance(value, list):
            return isinstance(concrete, list) and _align(value, concrete, path, 0, 0, params)
        return bool(value == concrete)
    dist = primitive.distribution
    if not isinstance(dist, CategoricalDistribution):
        number = isinstance(concrete, int | float) and not isinstance(concrete, bool)
        if number and dist.low <= concrete <= dist.high and (not dist.step or (concrete - dist.low) % dist.step == 0):
            params[path] = concrete
            return True
        return False
    for label, option in zip(dist.choices, primitive.options, strict=True):
        kept = dict(params)
        params[path] = label
        if _unify(option, concrete, f"{path}={label}", params) if _is_nested(option) else option == concrete:
            return True
        params.clear()
        params.update(kept)
    return False


def _is_nested(value: Any) -> bool:
    return isinstance(value, Mapping | list)


def _align(items: list[Any], concrete: list[Any], path: str, i: int, j: int, params: dict[str, Any]) -> bool:
    """Items i.. of a space's list against items j.. of the concrete list, any droppable item dropped."""
    if i == len(items):
        return j == len(concrete)
    kept = dict(params)
    here = f"{path}[{i}]"
    matched = j < len(concrete) and _unify(items[i], concrete[j], here, params)
    if matched and _align(items, concrete, path, i + 1, j + 1, params):
        return True
    params.clear()
    params.update(kept)
    if _unify_dropped(items[i], here, params) and _align(items, concrete, path, i + 1, j, params):
        return True
    params.clear()
    params.update(kept)
    return False


def _unify_dropped(item: Any, path: str, params: dict[str, Any]) -> bool:
    """Whether `item` can be dropped (`none`, or `type: none`), with the params that drop it; the
    primitives a dropped mapping still samples take their first value."""
    if _unify(item, DROP, path, params):
        return True
    if isinstance(item, Mapping) and "type" in item and _unify(item["type"], DROP, f"{path}.type", params):
        sample({path: {k: v for k, v in item.items() if k != "type"}}, recording(_first, params))
        return True
    return False
