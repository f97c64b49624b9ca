"""YAML spec → validated `Spec`; every error names the YAML path of the problem.

The spec's plugin calls (stem, branches, downsamples) are checked against the factories'
signatures, so plugins need no schema of their own. Sections that belong to other stages of the
flow (`train:`, `data:`, `search:`) are only checked to be mappings here and are validated by the
modules that read them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from sandbox.errors import PluginError, SpecError, did_you_mean
from sandbox.registry import REGISTRY, Param
from sandbox.spec.checks import (
    check_keys,
    check_type,
    key_text,
    kind_of,
    list_at,
    mapping,
    positive_int,
    probability,
    typed,
)
from sandbox.spec.datasets import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from sandbox.spec.recipe import data_config, train_config
from sandbox.spec.schema import (
    MAX_INPUT_CHANNELS,
    MAX_MODULES,
    MAX_REPEAT,
    MAX_STAGES,
    MODULE_KEYS,
    SPLIT_KEYS,
    TOP_LEVEL_KEYS,
    WIDTH_KEYS,
    AuxSpec,
    Branch,
    Call,
    Combine,
    ModuleSpec,
    Spec,
    SplitSpec,
    StageSpec,
)
from sandbox.spec.search import search_config
from sandbox.spec.shipped import resolve_spec, shipped_name, unknown_spec_hint

MAX_YAML_BYTES = 16 * 2**20  # spec files are a few kB; bigger is a mistake, refused before reading
MAX_YAML_DEPTH = 64  # nesting levels; specs need about 12
MAX_YAML_NODES = 100_000  # with every alias counted at its expanded size; specs need a few hundred


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a spec file into a mapping; malformed YAML is a SpecError with its line, and so is YAML
    past the limits above (an alias bomb, deep nesting), refused while composing, before it expands.

    At most MAX_YAML_BYTES are read whatever the file claims: /dev/zero, a FIFO or a process
    substitution has no size to check beforehand, and is read once, as it streams."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_YAML_BYTES + 1)
        if len(data) > MAX_YAML_BYTES:
            raise SpecError(str(path), f"larger than {MAX_YAML_BYTES // 2**20} MiB: not a spec")
        text = data.decode()
    except FileNotFoundError as err:
        raise SpecError("", f"cannot read spec {path}: {err.strerror or err}{unknown_spec_hint(path)}") from err
    except OSError as err:
        raise SpecError("", f"cannot read spec {path}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise SpecError("", f"cannot read spec {path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    data = parse_yaml(text, str(path))
    if not isinstance(data, dict):
        raise SpecError(str(path), f"the top level must be a mapping of keys, not {kind_of(data)}")
    return data


def parse_yaml(text: str, where: str, *, file: bool = True) -> Any:
    """YAML text, a file's or (`file=False`) a `--set` value's, within the limits above; `where`
    names it in errors, with the line and column in a file."""
    if len(text) > MAX_YAML_BYTES:  # characters: at least as many bytes
        raise SpecError(where, f"larger than {MAX_YAML_BYTES // 2**20} MiB")
    try:
        loader = _BoundedLoader(text, where)  # checks the characters: a YAMLError too
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) if file else None
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SpecError(
            _where(where, mark), f"{'malformed YAML' if file else 'the value is not YAML'}: {problem}"
        ) from err
    except SpecError as err:  # a limit passed
        if file:
            raise
        raise SpecError(where, err.message) from None  # a value has no lines to point at


class _BoundedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that counts while composing, where an alias is still one node: the sizes
    that expanding aliases would give are added up without expanding them, so a "billion laughs"
    (a few hundred bytes, 10**9 nodes once expanded) is refused in microseconds."""

    def __init__(self, text: str, where: str) -> None:
        super().__init__(text)
        self.where = where
        self.depth = 0
        self.nodes = 0  # composed so far, each alias counted as the nodes of what it names
        self.sizes: dict[str, int] = {}  # anchor → the expanded size of its node, once composed

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self.anchors and event.anchor not in self.sizes:
                self._refuse(event, f"alias *{event.anchor} is inside its own anchor: a spec cannot contain itself")
            self._count(self.sizes.get(event.anchor, 1), event)
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > MAX_YAML_DEPTH:
            self._refuse(event, f"nested deeper than {MAX_YAML_DEPTH} levels: not a spec")
        before = self.nodes
        self._count(1, event)
        node = super().compose_node(parent, index)
        self.depth -= 1
        if isinstance(event, yaml.NodeEvent) and event.anchor is not None:
            self.sizes[event.anchor] = self.nodes - before
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A mapping whose own keys are unique: YAML lets a second `train:` silently win. Keys that
        `<<` merges in may be overridden, as YAML means them to be, so they are not compared."""
        first: dict[tuple[str, str], yaml.Mark] = {}
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                seen = first.setdefault((key.tag, key.value), key.start_mark)
                if seen is not key.start_mark:
                    raise SpecError(
                        _where(self.where, key.start_mark),
                        f"duplicate key {key.value!r}, first at line {seen.line + 1}: remove one of them",
                    )
        return super().construct_mapping(node, deep=deep)

    def _count(self, nodes: int, event: yaml.Event) -> None:
        self.nodes += nodes
        if self.nodes > MAX_YAML_NODES:
            self._refuse(event, f"more than {MAX_YAML_NODES:,} YAML nodes, aliases expanded: an alias bomb?")

    def _refuse(self, event: yaml.Event, message: str) -> NoReturn:
        raise SpecError(_where(self.where, event.start_mark), message)


def _where(where: str, mark: yaml.Mark | None) -> str:
    return f"{where}:{mark.line + 1}:{mark.column + 1}" if mark else where


def load_spec(source: str | Path | Mapping[str, Any], *, plugin_files: Sequence[str | Path] = ()) -> Spec:
    """Read and validate a concrete spec from a YAML file or a mapping.

    `plugin_files` (from `--plugin`) are loaded before the spec's own `plugins:` list, whose
    paths are relative to the spec file (to the working directory for a mapping).
    """
    if isinstance(source, Mapping):
        raw, base = dict(source), Path.cwd()
        path = None
    else:
        path = resolve_spec(source)
        raw, base = read_yaml(path), path.resolve().parent
    load_plugins(command_line=plugin_files)
    refuse_space(raw, path)
    return validate(raw, base=base, source=path)


def refuse_space(raw: Mapping[str, Any], source: Path | None) -> None:
    """A search space where one network is needed (`build`, `train`) is an error that says so and
    what to do, not a type error at its first primitive ("stem.out: expected an int, got a mapping")."""
    from sandbox.spec.primitives import primitives  # imports Optuna: only where a spec is loaded whole

    found = primitives(raw)
    if found:
        name = shipped_name(source) or str(source) if source is not None else "SPEC"
        raise SpecError(
            str(source or "spec"),
            f"is a search space ({len(found)} search primitives, the first at {found[0].path}), not one network: "
            f"`sandbox show {name}` prints its FLOP range, `sandbox search {name}` trains candidates "
            "and writes the best one's spec to RUN_DIR/best.yaml",
        )


def validate(raw: Mapping[str, Any], *, base: Path, source: Path | None = None) -> Spec:
    """Check a concrete spec mapping and turn it into a `Spec`."""
    if not isinstance(raw, Mapping):
        raise SpecError("", f"the top level must be a mapping of keys, not {kind_of(raw)}")
    check_keys(raw, TOP_LEVEL_KEYS, "", required=("stem", "stages"))
    load_plugins(raw, base)

    size_spec = mapping(raw.get("input", {}), "input")
    check_keys(size_spec, ("channels", "size"), "input")
    channels = positive_int(size_spec.get("channels", 1), "input.channels", maximum=MAX_INPUT_CHANNELS)
    size = positive_int(size_spec.get("size", 28), "input.size")
    mean, std = _normalization(raw.get("normalize", {}), channels)
    defaults = mapping(raw.get("defaults", {}), "defaults")

    stem = _call("stem", raw["stem"], "stem", defaults)
    stages_raw = raw["stages"]
    if not isinstance(stages_raw, list) or not stages_raw:
        raise SpecError("stages", f"expected a non-empty list of stages, got {kind_of(stages_raw)}")
    if len(stages_raw) > MAX_STAGES:
        raise SpecError("stages", f"{len(stages_raw):,} stages, more than the {MAX_STAGES} a network may have")
    stages: list[StageSpec] = []
    for i, stage in enumerate(stages_raw):
        stages.append(_stage(stage, i, defaults, room=MAX_MODULES - sum(len(s.modules) for s in stages)))
    names = [module.name for stage in stages for module in stage.modules]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SpecError("stages", f"module name {duplicates[0]!r} is used more than once")
    _check_defaults(defaults, [stem, *(call for stage in stages for call in _calls(stage))])
    aux = tuple(_aux(a, f"aux[{i}]", names) for i, a in enumerate(list_at(raw, "aux", "aux")))
    for i, tap in enumerate(aux):
        if tap.after in [earlier.after for earlier in aux[:i]]:
            raise SpecError(f"{tap.path}.after", f"module {tap.after!r} already has an aux head")

    head = mapping(raw.get("head", {}), "head")
    check_keys(head, ("dropout", "fc", "act"), "head")
    fc = typed(head.get("fc", True), bool, "head.fc")
    if fc and "act" in head:
        raise SpecError("head.act", "only a head with fc: false (a 1x1 conv to the classes) takes an activation")
    return Spec(
        name=typed(raw.get("name", source.stem if source else "network"), str, "name"),
        channels=channels,
        size=size,
        classes=positive_int(raw.get("classes", 10), "classes"),
        mean=mean,
        std=std,
        stem=stem,
        stages=tuple(stages),
        dropout=probability(head.get("dropout", 0.2), "head.dropout"),
        fc=fc,
        aux=aux,
        head_act=typed(head.get("act", "identity"), str, "head.act"),
        train=train_config(raw.get("train") or {}),
        data=data_config(raw.get("data") or {}),
        search=search_config(raw.get("search") or {}),
        raw=dict(raw),
        source=source,
    )


# ---------------------------------------------------------------------------- sections


def _stage(raw: Any, index: int, defaults: Mapping[str, Any], room: int) -> StageSpec:
    """One stage, whose modules (`repeat:` expanded) must fit in the `room` the earlier stages left."""
    path = f"stages[{index}]"
    stage = mapping(raw, path)
    check_keys(stage, ("downsample", "modules"), path, required=("modules",))
    down = stage.get("downsample")
    downsample = None if down is None else _call("downsample", down, f"{path}.downsample", defaults)
    modules_raw = stage["modules"]
    if not isinstance(modules_raw, list) or not modules_raw:
        raise SpecError(f"{path}.modules", f"expected a non-empty list of modules, got {kind_of(modules_raw)}")
    modules: list[ModuleSpec] = []
    for j, module_raw in enumerate(modules_raw):
        modules.extend(_modules(module_raw, index, j, defaults))
        if len(modules) > room:
            raise SpecError(f"{path}.modules[{j}]", f"more than the {MAX_MODULES} modules a network may have")
    return StageSpec(downsample, tuple(modules), path)


def _modules(raw: Any, stage: int, index: int, defaults: Mapping[str, Any]) -> list[ModuleSpec]:
    """One entry of `modules:`, which `repeat: n` turns into n modules of the same widths."""
    path = f"stages[{stage}].modules[{index}]"
    module = mapping(raw, path)
    check_keys(module, MODULE_KEYS, path, required=("branches",))
    repeat = positive_int(module.get("repeat", 1), f"{path}.repeat", maximum=MAX_REPEAT)
    stride = positive_int(module.get("stride", 1), f"{path}.stride")
    padding = module.get("padding")
    if padding is not None and (typed(padding, int, f"{path}.padding") < 0):
        raise SpecError(f"{path}.padding", f"must be 0 (unpadded) or more, got {padding}")
    combine: Combine = check_type(module.get("combine", "concat"), Combine, f"{path}.combine")
    why = "the input it adds back keeps its height and width; reduce in a concat module or a downsample"
    if combine == "residual" and stride > 1:
        raise SpecError(f"{path}.stride", f"a residual module cannot have stride {stride}: {why}")
    if combine == "residual" and padding is not None:
        raise SpecError(f"{path}.padding", f"a residual module cannot set its branches' padding: {why}")
    scale = typed(module.get("scale", 1.0), float, f"{path}.scale")
    if scale <= 0:
        raise SpecError(f"{path}.scale", f"the residual's scale must be positive, got {scale}")
    act = typed(module.get("act", defaults.get("act", "relu")), str, f"{path}.act")
    branches_raw = module["branches"]
    if not isinstance(branches_raw, list) or not branches_raw:
        raise SpecError(f"{path}.branches", f"expected a non-empty list of branches, got {kind_of(branches_raw)}")
    imposed = {"stride": (stride, f"{path}.stride")} if stride > 1 else {}
    if padding is not None:
        imposed["padding"] = (padding, f"{path}.padding")
    branches = tuple(_branch(b, f"{path}.branches[{k}]", defaults, imposed) for k, b in enumerate(branches_raw))
    base = typed(module.get("name", f"{stage}.{index}"), str, f"{path}.name")
    names = [base] if repeat == 1 else [f"{base}.{r}" for r in range(repeat)]
    return [ModuleSpec(name, branches, path, stride, padding, combine, scale, act) for name in names]


def _branch(raw: Any, path: str, defaults: Mapping[str, Any], imposed: Mapping[str, tuple[Any, str]]) -> Branch:
    """One entry of `branches:`: a plugin call, or `{trunk: branch, split: [branch, ...]}`, whose
    trunk takes what the module imposes (its stride) and whose parts run on the trunk's output."""
    entry = mapping(raw, path)
    if not any(key in entry for key in SPLIT_KEYS):
        return _call("branch", entry, path, defaults, imposed)
    check_keys(entry, SPLIT_KEYS, path, required=SPLIT_KEYS)
    parts_raw = entry["split"]
    if not isinstance(parts_raw, list) or not parts_raw:
        got = "an empty list" if parts_raw == [] else kind_of(parts_raw)
        raise SpecError(f"{path}.split", f"expected a non-empty list of branches to split into, got {got}")
    trunk = _branch(entry["trunk"], f"{path}.trunk", defaults, imposed)
    parts = tuple(_branch(part, f"{path}.split[{i}]", defaults, {}) for i, part in enumerate(parts_raw))
    return SplitSpec(trunk, parts, path)


def _calls(stage: StageSpec) -> list[Call]:
    down = [stage.downsample] if stage.downsample is not None else []
    return [*down, *(call for module in stage.modules for call in module.calls)]


def _check_defaults(defaults: Mapping[str, Any], calls: Sequence[Call]) -> None:
    """A default that no plugin of the spec takes is a typo (`nrom: none`), not a silent no-op."""
    taken = {name for call in calls for name in call.plugin.params}
    for key in defaults:
        if key not in taken:
            raise SpecError(
                f"defaults.{key_text(key)}", f"no plugin in this spec takes it (they take: {', '.join(sorted(taken))})"
            )


def _aux(raw: Any, path: str, module_names: list[str]) -> AuxSpec:
    aux = mapping(raw, path)
    keys = ("after", "weight", "pool", "stride", "conv", "conv2", "kernel2", "global_pool", "hidden", "dropout")
    check_keys(aux, keys, path, required=("after",))
    after = aux["after"]
    if not isinstance(after, str):  # unquoted, `after: 1.10` reads as 1.1 and would tap module 1.1
        why = "YAML reads an unquoted 1.10 as the number 1.1, so quote the name: after: '1.10'"
        raise SpecError(f"{path}.after", f"expected a module's name as text, got {after!r}; {why}")
    if after not in module_names:
        names = ", ".join(map(key_text, module_names))
        raise SpecError(f"{path}.after", f"no module named {after!r} (modules: {names})")
    return AuxSpec(
        after=after,
        weight=typed(aux.get("weight", 0.3), float, f"{path}.weight"),
        pool=positive_int(aux.get("pool", 5), f"{path}.pool"),
        stride=positive_int(aux.get("stride", 3), f"{path}.stride"),
        conv=positive_int(aux.get("conv", 128), f"{path}.conv"),
        hidden=_width_or_none(aux.get("hidden", 1024), f"{path}.hidden"),
        dropout=probability(aux.get("dropout", 0.7), f"{path}.dropout"),
        path=path,
        conv2=_width_or_none(aux.get("conv2", 0), f"{path}.conv2"),
        kernel2=positive_int(aux.get("kernel2", 5), f"{path}.kernel2"),
        global_pool=typed(aux.get("global_pool", False), bool, f"{path}.global_pool"),
    )


def _width_or_none(value: Any, path: str) -> int:
    """A width that may be 0 (the layer left out)."""
    value = typed(value, int, path)
    if value < 0:
        raise SpecError(path, f"must be 0 (none) or a positive width, got {value}")
    return value


def _normalization(raw: Any, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    norm = mapping(raw, "normalize")
    check_keys(norm, ("mean", "std"), "normalize")
    default_mean = FASHION_MNIST_MEAN * channels if channels > 1 else FASHION_MNIST_MEAN
    default_std = FASHION_MNIST_STD * channels if channels > 1 else FASHION_MNIST_STD
    values = []
    for key, default in (("mean", default_mean), ("std", default_std)):
        seq = norm.get(key, list(default))
        if not isinstance(seq, list) or len(seq) != channels:
            raise SpecError(f"normalize.{key}", f"expected a list of {channels} numbers (one per channel)")
        values.append(tuple(typed(v, float, f"normalize.{key}[{i}]") for i, v in enumerate(seq)))
    if any(s <= 0 for s in values[1]):
        raise SpecError("normalize.std", "every std must be positive")
    return values[0], values[1]


def _call(
    kind: str, raw: Any, path: str, defaults: Mapping[str, Any], imposed: Mapping[str, tuple[Any, str]] | None = None
) -> Call:
    """Check a `{type: ..., key: value}` mapping against the plugin's signature. `imposed` keys
    (a reduction module's stride) are set by an enclosing key, given as (value, that key's path)."""
    call = mapping(raw, path)
    if "type" not in call:
        raise SpecError(path, f"missing key 'type' (the {kind} plugin to use)")
    plugin = REGISTRY.get(kind, call["type"], f"{path}.type")
    params = plugin.params
    given = {k: v for k, v in call.items() if k != "type"}
    for key in given:
        if key not in params:
            takes = ", ".join(params) or "no keys"
            hint = did_you_mean(key, params)
            raise SpecError(f"{path}.{key_text(key)}", f"unknown key for {kind} {plugin.name!r} (takes: {takes}{hint})")
    forced = _imposed(imposed or {}, given, params, f"{kind} {plugin.name!r}", path)
    merged = {k: v for k, v in defaults.items() if k in params} | {k: v for k, (v, _) in forced.items()} | given
    for name, param in params.items():
        if name not in merged and param.required:
            raise SpecError(path, f"missing key {name!r} for {kind} {plugin.name!r}")
    where = {k: f"{path}.{k}" if k in given else f"defaults.{k}" for k in merged}  # a default errs at its own key
    where |= {k: source for k, (_, source) in forced.items()}
    checked = {k: _check_param(v, params[k], where[k]) for k, v in merged.items()}
    return Call(plugin, checked, path, where)


def _imposed(
    imposed: Mapping[str, tuple[Any, str]], given: Mapping[str, Any], params: Mapping[str, Param], what: str, path: str
) -> Mapping[str, tuple[Any, str]]:
    """The keys an enclosing key sets on a call, refused where the plugin cannot take them or sets them too."""
    for key, (value, source) in imposed.items():
        if key not in params:
            raise SpecError(source, f"{what} at {path} takes no {key}, so it cannot be in a module with {key} {value}")
        if key in given:
            raise SpecError(f"{path}.{key}", f"the module's {key} ({value}) sets it; give it on the module or here")
    return imposed


def _check_param(value: Any, param: Param, path: str) -> Any:
    value = check_type(value, param.annotation, path)
    if param.name in WIDTH_KEYS and isinstance(value, int) and value < 1:
        raise SpecError(path, f"must be a positive number of channels, got {value}")
    return value


def load_plugins(
    raw: Mapping[str, Any] | None = None, base: Path | None = None, command_line: Sequence[str | Path] = ()
) -> None:
    """The one way plugin files are loaded: the `command_line` ones (`--plugin`) first, then those
    of the spec `raw`'s `plugins:` list, relative to `base` (the spec's folder). A file that fails
    is a SpecError at the key that named it."""
    for file in command_line:
        _load_plugin(file, "--plugin")
    for index, file in enumerate(list_at(raw or {}, "plugins", "plugins")):
        _load_plugin((base or Path.cwd()) / typed(file, str, f"plugins[{index}]"), f"plugins[{index}]")


def _load_plugin(file: str | Path, path: str) -> None:
    try:
        REGISTRY.load_file(file)
    except PluginError as err:
        raise SpecError(path, str(err)) from err
