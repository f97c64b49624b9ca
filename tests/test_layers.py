"""The subpackages import each other in one direction only: down the table below, never back.

Every `import` of `sandbox/**/*.py` counts, those inside functions too (a lazy import is still an
arrow), relative ones resolved. A module or subpackage not in the table fails the test, so a new
one is placed deliberately.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.paths import REPO

# Bottom first: a name may import only names in rows above its own (never its own row's others).
ORDER: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("registry", "verbs"),
    ("spec",),  # YAML and its sections: the bottom of the network's layers
    ("model",),
    ("layers", "paired", "space"),
    ("runs",),  # run directories and reading them back: below everything that writes or reads them
    ("train",),
    ("search", "export"),
    ("api",),  # the verbs as Python calls
    ("commands",),
    ("sandbox",),  # sandbox/__init__.py, the front door: lazy imports of the API
    ("cli",),
    ("__main__",),
    ("plugins",),  # the built-in plugins use the front door as any plugin does
)
# `sandbox.train`, `.search` and `.export` are packages and the API's calls at once: calling one
# imports `sandbox.api` (`sandbox.verbs`), the one arrow allowed up.
EXEMPT = {("verbs", "api")}

Graph = Mapping[str, Mapping[str, Sequence[str]]]  # importer → imported → where (file:line)


def node_of(module: str, root: Path) -> str | None:
    """The table's name for a sandbox module: its subpackage, its top-level module, or `sandbox`."""
    parts = module.split(".")
    if parts[0] != "sandbox":
        return None
    if len(parts) == 1:
        return "sandbox"
    top = root / parts[1]
    return parts[1] if top.is_dir() or top.with_suffix(".py").is_file() else "sandbox"


def import_graph(root: Path) -> dict[str, dict[str, list[str]]]:
    """Every arrow between the table's names in the package at `root`, with where it is written."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        importer = node_of(module, root)
        assert importer is not None
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    kept = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*kept, *([node.module] if node.module else [])])
                targets = [f"{base}.{alias.name}" if base == "sandbox" else base for alias in node.names]
            else:
                continue
            for target in targets:
                imported = node_of(target, root)
                if imported is not None and imported != importer:
                    where = f"{path.relative_to(root.parent)}:{node.lineno}"
                    graph.setdefault(importer, {}).setdefault(imported, []).append(where)
    return graph


def back_arrows(graph: Graph, order: Sequence[Sequence[str]], exempt: set[tuple[str, str]]) -> list[str]:
    """Each arrow that does not point down the table, and each name the table lacks, in words."""
    rank = {name: row for row, names in enumerate(order) for name in names}
    found = []
    for importer, imports in graph.items():
        for imported, where in imports.items():
            unknown = [name for name in (importer, imported) if name not in rank]
            if unknown:
                found.append(f"{', '.join(unknown)}: not in the table ({where[0]})")
            elif rank[imported] >= rank[importer] and (importer, imported) not in exempt:
                found.append(f"{importer} -> {imported} points up or across ({', '.join(where)})")
    return found


def cycles(graph: Graph, exempt: set[tuple[str, str]]) -> list[list[str]]:
    """The names that import each other round a loop (strongly connected, more than one), each sorted."""
    arrows = {a: [b for b in bs if (a, b) not in exempt] for a, bs in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(name: str) -> None:  # Tarjan's algorithm
        index[name] = low[name] = len(index)
        stack.append(name)
        for other in arrows.get(name, []):
            if other not in index:
                visit(other)
                low[name] = min(low[name], low[other])
            elif other in stack:
                low[name] = min(low[name], index[other])
        if low[name] == index[name]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == name:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in sorted(arrows):
        if name not in index:
            visit(name)
    return found


def test_the_package_imports_down_the_table_only() -> None:
    graph = import_graph(REPO / "sandbox")
    assert back_arrows(graph, ORDER, EXEMPT) == []
    assert cycles(graph, EXEMPT) == []


def test_a_back_arrow_and_a_cycle_are_caught() -> None:
    graph = {"spec": {"train": ["sandbox/spec/load.py:52"]}, "train": {"spec": ["sandbox/train/data.py:37"]}}
    assert back_arrows(graph, ORDER, EXEMPT) == ["spec -> train points up or across (sandbox/spec/load.py:52)"]
    assert cycles(graph, EXEMPT) == [["spec", "train"]]
    assert back_arrows({"search": {"export": ["x.py:1"]}}, ORDER, EXEMPT) == [
        "search -> export points up or across (x.py:1)"
    ]
    assert back_arrows({"runner": {"spec": ["x.py:1"]}}, ORDER, EXEMPT) == ["runner: not in the table (x.py:1)"]


def test_the_graph_counts_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    package = tmp_path / "sandbox"
    for folder in ("spec", "train"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "errors.py").write_text("")
    (package / "spec" / "load.py").write_text("def late():\n    from sandbox.train import loop\n")
    (package / "train" / "loop.py").write_text("from ..errors import SpecError\nfrom . import data\n")
    graph = import_graph(package)
    assert graph == {"spec": {"train": ["sandbox/spec/load.py:2"]}, "train": {"errors": ["sandbox/train/loop.py:1"]}}
    assert back_arrows(graph, ORDER, EXEMPT) == ["spec -> train points up or across (sandbox/spec/load.py:2)"]
