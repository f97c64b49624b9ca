"""Python source as data: expressions that lay themselves out, and an import block ruff accepts.

The exporter builds the network's constructor call as a tree of `Code` nodes and renders it at the
end, so layout (one line when it fits, one item per line when not, comments kept) is decided in one
place instead of by string concatenation all over the generator.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

LINE_LENGTH = 120
INDENT = "    "

Item = tuple[str | None, "Code | str"]  # (keyword or None, value)


@dataclass
class Code:
    """An expression `head item, item, ... close`, e.g. a call `nn.Sequential(a, b)` or a list `[a, b]`."""

    head: str
    items: list[Item] = field(default_factory=list)
    close: str = ")"
    comment: str = ""

    def has_comments(self) -> bool:
        return bool(self.comment) or any(isinstance(v, Code) and v.has_comments() for _, v in self.items)

    def flat(self) -> str:
        return self.head + ", ".join(_item(k, _flat(v)) for k, v in self.items) + self.close


def call(func: str, *args: Code | str, comment: str = "", **kwargs: Code | str) -> Code:
    """`func(*args, **kwargs)`, values given as code (`literal` writes plain values)."""
    items: list[Item] = [(None, a) for a in args] + list(kwargs.items())
    return Code(f"{func}(", items, ")", comment)


def listing(values: Sequence[Code | str]) -> Code:
    return Code("[", [(None, v) for v in values], "]")


def render(value: Code | str, indent: int = 0, prefix: str = "", suffix: str = "") -> list[str]:
    """Lines for `prefix value suffix` at `indent` levels: one line if it fits, else one item per line.

    A node's own comment goes at the end of its first line, so a comment always sits next to the
    layer it describes; nested comments force the multi-line form so that none is lost.
    """
    pad = INDENT * indent
    if isinstance(value, str):
        return [pad + prefix + value + suffix]
    comment = f"  # {value.comment}" if value.comment else ""
    one_line = pad + prefix + value.flat() + suffix + comment
    nested_comments = any(isinstance(v, Code) and v.has_comments() for _, v in value.items)
    if not value.items or (len(one_line) <= LINE_LENGTH and not nested_comments):
        return [one_line]
    lines = [pad + prefix + value.head + comment]
    for keyword, item in value.items:
        lines.extend(render(item, indent + 1, prefix=_item(keyword, ""), suffix=","))
    lines.append(pad + value.close + suffix)
    return lines


def literal(value: object) -> str:
    """A Python literal for a plain value, strings in double quotes as ruff's formatter writes them."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's string escapes are valid Python
    if isinstance(value, list | tuple):
        items = ", ".join(literal(v) for v in value)
        return f"[{items}]" if isinstance(value, list) else f"({items}{',' * (len(value) == 1)})"
    return repr(value)


def _flat(value: Code | str) -> str:
    return value if isinstance(value, str) else value.flat()


def _item(keyword: str | None, value: str) -> str:
    return f"{keyword}={value}" if keyword else value


class Imports:
    """The import statements a file needs, rendered in isort's order (what `ruff check` expects)."""

    def __init__(self) -> None:
        self._modules: set[tuple[str, str | None]] = set()  # import module [as alias]
        self._names: defaultdict[str, set[tuple[str, str | None]]] = defaultdict(set)  # from module import name
        self.bound: dict[str, str] = {}  # name in the file → what it is bound to, "module" or "module:name"

    def add(self, module: str, name: str | None = None, alias: str | None = None) -> None:
        """Import `module` (or `name` from it) unless an equal import exists; see `clash` first."""
        if name is None and alias is not None and "." in module:  # import a.b as b  ==  from a import b
            module, name = module.rsplit(".", 1)
            alias = None if name == alias else alias
        if name is None:
            self._modules.add((module, alias))
            top = module.split(".")[0]  # `import a.b` binds a
            self.bound[alias or top] = module if alias else top
        else:
            self._names[module].add((name, alias))
            self.bound[alias or name] = f"{module}:{name}"

    def clash(self, module: str, name: str | None = None, alias: str | None = None) -> str | None:
        """What the file already binds to this import's name, if that is something else."""
        probe = Imports()
        probe.add(module, name, alias)
        (bound, target), *_ = probe.bound.items()
        existing = self.bound.get(bound)
        return existing if existing not in (None, target) else None

    def render(self) -> list[str]:
        sections: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
        for module, alias in self._modules:
            sections[_section(module)].append((0, module, f"import {module}" + (f" as {alias}" if alias else "")))
        for module, names in self._names.items():
            members = ", ".join(n + (f" as {a}" if a else "") for n, a in sorted(names, key=_member_order))
            sections[_section(module)].append((1, module, f"from {module} import {members}"))
        blocks = ["\n".join(line for *_, line in sorted(sections[s])) for s in sorted(sections)]
        return "\n\n".join(blocks).splitlines()


def _section(module: str) -> int:
    """isort's sections: __future__, standard library, third party."""
    top = module.split(".")[0]
    if top == "__future__":
        return 0
    return 1 if top in sys.stdlib_module_names else 2


def _member_order(member: tuple[str, str | None]) -> tuple[int, str]:
    """isort's order-by-type: CONSTANTS, then Classes, then everything else, each alphabetical."""
    name = member[0]
    if name.isupper() and len(name) > 1:
        return 0, name
    return (1 if name[:1].isupper() else 2), name
