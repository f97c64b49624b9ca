"""Plugin registry: a name → factory map per kind, and the discovery of plugins.

A plugin is a plain function. Its signature is its schema: the first positional parameter is the
number of input channels, every keyword parameter is a key the spec may set (the annotation is the
type, the default makes it optional). Nothing else is declared, so a plugin is one short file.

Plugins come from three places, loaded in this order: the built-in `sandbox.plugins` package, installed
packages declaring the entry-point group `sandbox.plugins`, and files named by a spec's `plugins:`
list or by `--plugin`. A name registered twice from two different places is an error naming both.

Reserved keyword names, refused when a plugin registers: `type` (the key naming the plugin) and
`choice`, `int` and `float` (a mapping holding one is a search primitive) for every kind, and
`trunk` and `split` for branches (a branch holding them splits instead of calling a plugin). The
spec could never set such a keyword.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.errors import PluginError, SpecError, describe, did_you_mean

KINDS = ("stem", "branch", "downsample")
BUILTIN_MODULES = ("sandbox.plugins.stems", "sandbox.plugins.branches", "sandbox.plugins.downsamples")
ENTRY_POINT_GROUP = "sandbox.plugins"

USER_MODULES = "sandbox_user_plugins"  # the package name plugin files are imported under
# What a plugin's import may raise that becomes its PluginError: a sys.exit() in it would otherwise end
# the command without a word. KeyboardInterrupt is not among them: Ctrl-C still interrupts.
IMPORT_FAILURES = (Exception, SystemExit)
Factory = Callable[..., Any]
RESERVED = {kind: ("type", "choice", "int", "float") for kind in KINDS} | {
    "branch": ("type", "choice", "int", "float", "trunk", "split")
}  # see the module's docstring: `sandbox.spec.schema.SPLIT_KEYS`, `sandbox.spec.primitives.PRIMITIVE_KEYS`


@dataclass(frozen=True)
class Param:
    """One key a plugin accepts, read off its factory's signature."""

    name: str
    annotation: Any
    default: Any = inspect.Parameter.empty

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    def describe(self) -> str:
        kind = _type_name(self.annotation)
        return f"{self.name}: {kind}" if self.required else f"{self.name}: {kind} = {self.default!r}"


@dataclass(frozen=True)
class Plugin:
    kind: str
    name: str
    factory: Factory
    source: str

    @functools.cached_property
    def params(self) -> dict[str, Param]:
        return _signature_params(self.factory)


def _signature_params(factory: Factory) -> dict[str, Param]:
    try:
        hints = typing.get_type_hints(factory)
    except Exception:  # unresolvable annotations: fall back to whatever is there
        hints = {}
    params = list(inspect.signature(factory).parameters.values())[1:]  # [0] is in_channels
    return {
        p.name: Param(p.name, hints.get(p.name, p.annotation), p.default)
        for p in params
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


def _type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return "any"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _source_of(factory: Factory) -> str:
    """Where a factory was defined: its file for user plugins, its module for packages."""
    module = sys.modules.get(factory.__module__)
    file = getattr(module, "__file__", None)
    return str(Path(file).resolve()) if file else factory.__module__


@dataclass(frozen=True)
class Snapshot:
    """A registry's state at one moment, for `Registry.restore`."""

    plugins: dict[str, dict[str, Plugin]]
    loaded_files: frozenset[Path]
    discovered: bool
    modules: frozenset[str]


class Registry:
    """Plugins by kind and name, with lazy discovery of built-ins and entry points."""

    def __init__(self) -> None:
        self._plugins: dict[str, dict[str, Plugin]] = {kind: {} for kind in KINDS}
        self._loaded_files: set[Path] = set()
        self._discovered = False

    def add(self, kind: str, name: str, factory: Factory) -> None:
        if kind not in KINDS:
            raise PluginError(f"unknown plugin kind {kind!r} (known: {', '.join(KINDS)})")
        source = _source_of(factory)
        existing = self._plugins[kind].get(name)
        if existing is not None and existing.source != source:
            raise PluginError(f"{kind} {name!r} is registered twice: by {existing.source} and by {source}")
        params = list(inspect.signature(factory).parameters.values())
        if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
            raise PluginError(f"{kind} {name!r} ({source}): the factory's first parameter must be in_channels")
        reserved = [param.name for param in params[1:] if param.name in RESERVED[kind]]
        if reserved:
            raise PluginError(
                f"{kind} {name!r} ({source}): keyword {reserved[0]!r} is reserved in a {kind} entry, so no spec "
                f"could set it (reserved: {', '.join(RESERVED[kind])}); rename it"
            )
        self._plugins[kind][name] = Plugin(kind, name, factory, source)

    def discover(self) -> None:
        """Load the built-in plugins and those of installed packages, once they all load: a package
        that failed is tried, and reported, again rather than left silently missing."""
        if self._discovered:
            return
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                entry.load()
            except IMPORT_FAILURES as err:
                raise PluginError(
                    f"plugin entry point {entry.name!r} ({entry.value}) failed to load: {describe(err)}"
                ) from err
        self._discovered = True

    def load_file(self, path: str | Path) -> None:
        """Import a plugin file; loading the same file again is a no-op."""
        path = Path(path).resolve()
        if path in self._loaded_files:
            return
        self.discover()
        if not path.is_file():
            raise PluginError(f"plugin file {path} does not exist")
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
        module_name = f"{USER_MODULES}.{path.stem}_{digest}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise PluginError(f"plugin file {path} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # so inspect (and the exporter) can find its source
        try:
            spec.loader.exec_module(module)
        except PluginError:
            sys.modules.pop(module_name, None)
            raise
        except IMPORT_FAILURES as err:
            sys.modules.pop(module_name, None)
            raise PluginError(f"plugin file {path} failed to import: {describe(err)}") from err
        self._loaded_files.add(path)

    def snapshot(self) -> Snapshot:
        """The registry as it is now; `restore` returns to it, so a test's plugins do not leak."""
        plugins = {kind: dict(named) for kind, named in self._plugins.items()}
        return Snapshot(plugins, frozenset(self._loaded_files), self._discovered, frozenset(sys.modules))

    def restore(self, snapshot: Snapshot) -> None:
        """Forget every plugin registered, and every plugin file imported, since `snapshot`."""
        self._plugins = {kind: dict(named) for kind, named in snapshot.plugins.items()}
        self._loaded_files, self._discovered = set(snapshot.loaded_files), snapshot.discovered
        for name in set(sys.modules) - snapshot.modules:
            if name.startswith(f"{USER_MODULES}."):
                del sys.modules[name]

    def get(self, kind: str, name: Any, path: str) -> Plugin:
        """The plugin `name` of `kind`, or a SpecError at `path` with suggestions."""
        self.discover()
        known = self._plugins[kind]
        if isinstance(name, str) and name in known:
            return known[name]
        names = sorted(known)
        raise SpecError(path, f"unknown {kind} {name!r} (known: {', '.join(names)}{did_you_mean(name, names)})")

    def all(self, kind: str) -> list[Plugin]:
        self.discover()
        return [self._plugins[kind][name] for name in sorted(self._plugins[kind])]


REGISTRY = Registry()


def _decorator(kind: str, name: str) -> Callable[[Factory], Factory]:
    def register(factory: Factory) -> Factory:
        REGISTRY.add(kind, name, factory)
        return factory

    return register


def register_branch(name: str) -> Callable[[Factory], Factory]:
    """Register `factory(in_channels, **params) -> nn.Module` keeping height and width."""
    return _decorator("branch", name)


def register_stem(name: str) -> Callable[[Factory], Factory]:
    """Register `factory(in_channels, **params) -> nn.Module`, the network's first layers."""
    return _decorator("stem", name)


def register_downsample(name: str) -> Callable[[Factory], Factory]:
    """Register `factory(in_channels, **params) -> nn.Module` placed between stages."""
    return _decorator("downsample", name)
