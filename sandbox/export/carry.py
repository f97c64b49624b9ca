"""Carrying a plugin's own code into an exported file, for modules that are not plain torch layers.

A plugin whose module is a class the user wrote (a residual branch, an attention block) cannot be
rewritten as torch constructor calls, so its factory is copied into the file, with exactly the
top-level functions, classes and constants of its module that the factory needs (found by name on
the module's syntax tree), and is called there with the spec's parameters. The copy must stay
torch-only: its imports may be torch, the standard library, the sandbox's `register_*` decorators
(dropped) and `sandbox.layers` (replaced by a torch-only `conv_norm_act` with the same layers and
state-dict keys). Anything else is refused at export time with the reason.
"""

from __future__ import annotations

import ast
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from sandbox.errors import SandboxError
from sandbox.export.code import Code, Imports, call, literal
from sandbox.spec.load import Call

DECORATOR_MODULES = ("sandbox", "sandbox.registry")
DECORATORS = ("register_branch", "register_stem", "register_downsample")
LAYER_NAMES = ("conv_norm_act", "NO_NORM")  # what sandbox.layers offers carried code

# The torch-only sandbox.layers that carried code calls: same layers, same state-dict keys.
LAYERS_STANDIN = '''
NO_NORM = "none"
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "celu": nn.CELU,
    "selu": nn.SELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "mish": nn.Mish,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "hard_sigmoid": nn.Hardsigmoid,
    "hard_swish": nn.Hardswish,
    "identity": nn.Identity,
}


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int] | list[int],
    *,
    stride: int = 1,
    padding: int | tuple[int, int] | list[int] | None = None,
    dilation: int = 1,
    groups: int = 1,
    norm: str = "batchnorm",
    act: str = "relu",
    norm_eps: float = 1e-5,
) -> nn.Module:
    """A torch-only stand-in for sandbox.layers.conv_norm_act, which the plugin code below calls.

    It makes the same layers with the same state-dict keys (conv, bn, act); norm is batchnorm or none.
    A kernel or padding may be a (height, width) pair; padding None is timm's symmetric one, 0 pads nothing.
    """
    if norm not in ("batchnorm", NO_NORM) or act not in ACTIVATIONS:
        raise ValueError(f"norm {norm!r} / act {act!r}: not available in this standalone file")
    kernel = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    if padding is None:
        padding = tuple(((stride - 1) + dilation * (k - 1)) // 2 for k in kernel)
    padding = (padding, padding) if isinstance(padding, int) else tuple(padding)
    layer = nn.Sequential()
    conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding, dilation, groups, bias=norm == NO_NORM)
    layer.add_module("conv", conv)
    if norm != NO_NORM:
        layer.add_module("bn", nn.BatchNorm2d(out_channels, eps=norm_eps))
    layer.add_module("act", ACTIVATIONS[act]())
    return layer
'''.strip()


class CarryError(SandboxError):
    """A plugin whose code cannot go into a torch-only file; the message says why."""


@dataclass
class Binding:
    """A name a plugin module binds with an import statement."""

    module: str
    name: str | None
    alias: str | None
    line: int


@dataclass
class PluginModule:
    """One plugin module's top-level definitions, and which of them the file needs."""

    file: str
    lines: list[str]
    definitions: dict[str, ast.stmt]
    bindings: dict[str, Binding]
    decorators: set[str]  # names bound to the sandbox's register_* decorators
    roots: list[str] = field(default_factory=list)
    plugins: dict[str, None] = field(default_factory=dict)  # "branch 'x'", in order, once each

    @property
    def what(self) -> str:
        return ", ".join(self.plugins)


class Carrier:
    """Collects the plugin code to carry, then writes it out as one block per plugin module."""

    def __init__(self, imports: Imports, reserved: set[str]) -> None:
        self.imports = imports
        self.reserved = reserved
        self.modules: dict[str, PluginModule] = {}
        self.needs_layers = False

    def carry(self, plugin_call: Call, in_channels: int, comment: str) -> Code:
        """The factory call that builds this plugin's module in the exported file."""
        plugin = plugin_call.plugin
        factory = plugin.factory
        module = self.modules.get(factory.__module__) or _read_module(plugin.kind, plugin.name, factory.__module__)
        if not isinstance(module.definitions.get(factory.__name__), ast.FunctionDef):
            raise CarryError(
                f"cannot carry {plugin.kind} {plugin.name!r} ({module.file}): "
                "its factory is not a top-level function of its module"
            )
        self.modules[factory.__module__] = module
        module.roots.append(factory.__name__)
        module.plugins[f"{plugin.kind} {plugin.name!r}"] = None
        params = {k: literal(v) for k, v in plugin_call.params.items()}
        return call(factory.__name__, str(in_channels), comment=comment, **params)

    def blocks(self) -> list[str]:
        """The carried code, one block per module; checks imports and name clashes on the way."""
        defined: dict[str, str] = {}
        blocks = []
        for module in self.modules.values():
            statements = self._closure(module)
            for name in (n for stmt in statements for n in _defined(stmt)):
                other = defined.setdefault(name, module.file)
                taken = name in self.reserved or name in self.imports.bound
                if taken or other != module.file:
                    where = "the exported file" if taken else other
                    raise CarryError(
                        f"cannot carry {module.what} from {module.file}: its name {name!r} "
                        f"clashes with {name!r} in {where}; rename it in the plugin file"
                    )
            header = (
                f"# Carried from {Path(module.file).name} ({module.what}): the plugin's code, minus its registration."
            )
            blocks.append(header + "\n" + "\n\n\n".join(_text(module, stmt) for stmt in statements))
        return blocks

    def _closure(self, module: PluginModule) -> list[ast.stmt]:
        """The module's top-level statements the factories need, in source order; imports recorded."""
        needed: dict[int, ast.stmt] = {}
        todo = list(module.roots)
        seen: set[str] = set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in module.definitions:
                stmt = module.definitions[name]
                needed[stmt.lineno] = stmt
                todo.extend(_used(stmt, module.decorators))
            elif name in module.bindings:
                self._import(module, name, module.bindings[name])
        return [needed[line] for line in sorted(needed)]

    def _import(self, module: PluginModule, name: str, binding: Binding) -> None:
        top = binding.module.split(".")[0]
        source = f"{module.file}:{binding.line}"
        if binding.module == "sandbox.layers" and binding.name in LAYER_NAMES and binding.alias is None:
            self.needs_layers = True
            return
        if name in module.decorators:
            raise CarryError(f"cannot carry {module.what}: {source} uses {name} other than as a decorator")
        if top != "torch" and top not in sys.stdlib_module_names:
            raise CarryError(
                f"cannot carry {module.what} into a torch-only file: {source} imports "
                f"{binding.module}{'.' + binding.name if binding.name else ''}, which is neither torch nor the "
                "standard library (sandbox.layers' conv_norm_act is the one sandbox import carried); "
                "use --format pt2, which needs no code"
            )
        clash = self.imports.clash(binding.module, binding.name, binding.alias)
        if clash is not None:
            raise CarryError(
                f"cannot carry {module.what}: {source} binds {name!r}, which the exported file binds to {clash}"
            )
        self.imports.add(binding.module, binding.name, binding.alias)


def _read_module(kind: str, name: str, module_name: str) -> PluginModule:
    """A plugin module's definitions and import bindings, read from its source."""
    module: ModuleType | None = sys.modules.get(module_name)
    source = getattr(module, "__file__", None) or module_name
    try:
        text = inspect.getsource(module) if module is not None else None
    except (OSError, TypeError):
        text = None
    if not text:
        raise CarryError(f"cannot carry {kind} {name!r}: the source of its module ({source}) is unavailable")
    tree = ast.parse(text)
    definitions: dict[str, ast.stmt] = {}
    bindings: dict[str, Binding] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            for a in stmt.names:
                bindings[a.asname or a.name.split(".")[0]] = Binding(a.name, None, a.asname, stmt.lineno)
        elif isinstance(stmt, ast.ImportFrom):
            if stmt.level:
                raise CarryError(f"cannot carry {kind} {name!r}: {source} uses a relative import (line {stmt.lineno})")
            for a in stmt.names:
                bindings[a.asname or a.name] = Binding(stmt.module or "", a.name, a.asname, stmt.lineno)
        else:
            definitions.update(dict.fromkeys(_defined(stmt), stmt))
    decorators = {bound for bound, b in bindings.items() if b.module in DECORATOR_MODULES and b.name in DECORATORS}
    return PluginModule(str(source), text.splitlines(), definitions, bindings, decorators)


def _defined(stmt: ast.stmt) -> list[str]:
    """Names a top-level function, class or assignment defines (other statements define none here)."""
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [stmt.name]
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def _used(stmt: ast.stmt, decorators: set[str]) -> set[str]:
    """Names a statement refers to, leaving out the sandbox decorators that the copy drops."""
    nodes: list[ast.AST] = [stmt]
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        kept = [d for d in stmt.decorator_list if not _is_registration(d, decorators)]
        nodes = [*kept, *(n for n in ast.iter_child_nodes(stmt) if n not in stmt.decorator_list)]
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)}


def _is_registration(decorator: ast.expr, decorators: set[str]) -> bool:
    return isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Name) and decorator.func.id in decorators


def _text(module: PluginModule, stmt: ast.stmt) -> str:
    """The statement's source with its leading comments, without its sandbox registration decorators."""
    decorator_list = getattr(stmt, "decorator_list", [])
    start = min([stmt.lineno, *(d.lineno for d in decorator_list)])
    while start > 1 and module.lines[start - 2].startswith("#"):
        start -= 1
    dropped = {
        line
        for d in decorator_list
        if _is_registration(d, module.decorators)
        for line in range(d.lineno, (d.end_lineno or d.lineno) + 1)
    }
    return "\n".join(
        module.lines[i - 1] for i in range(start, (stmt.end_lineno or stmt.lineno) + 1) if i not in dropped
    )
