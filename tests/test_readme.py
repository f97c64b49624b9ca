"""The README stays true: its plugin table is the registry's, its first commands are the main job and
the tests, its local links resolve, and it stays a short user's guide rather than a work log.

The plugin table's `kind`, `name` and `keys` columns are generated here from the registry; only the
`what` column is written by hand. When a built-in plugin is added, renamed or changes its keys, the
test fails and prints the table to paste between the README's `plugin-table` markers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from sandbox.registry import BUILTIN_MODULES, KINDS, REGISTRY, Plugin

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- plugin-table: begin", "<!-- plugin-table: end -->"
HEADER = ("kind", "name", "keys", "what")
COMMON_KEYS = ("norm", "act", "norm_eps")  # taken by (nearly) every plugin; the README says so once
MAIN_JOB = 'pip install -e ".[dev]" && python -m sandbox search search_spaces/quickstart.yaml'
TESTS = 'pip install -e ".[dev]" && python -m pytest -q'
FAST_TIER = 'python -m pytest -q -m "not slow"'
MAX_LINES = 320  # "under about 300 lines"
WORK_LOG = re.compile(r"\bsessions? \d|this session|\bwas (?:available|lent)\b|\bno GPU was\b", re.IGNORECASE)


def _value(default: Any) -> str:
    return yaml.safe_dump(default, default_flow_style=True).removesuffix("\n...\n").strip()


def _keys(plugin: Plugin) -> str:
    keys = [
        f"`{p.name}`" if p.required else f"`{p.name}: {_value(p.default)}`"
        for p in plugin.params.values()
        if p.name not in COMMON_KEYS
    ]
    return ", ".join(keys) or "none"


def registry_rows() -> list[tuple[str, str, str]]:
    """(kind, name, keys) of every built-in plugin, kinds in registry order, names sorted."""
    return [
        (kind, f"`{plugin.name}`", _keys(plugin))
        for kind in KINDS
        for plugin in REGISTRY.all(kind)
        if plugin.factory.__module__ in BUILTIN_MODULES
    ]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def readme_table() -> list[list[str]]:
    """The rows of the README's plugin table, header and separator left out."""
    text = README.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, f"README.md lacks the {BEGIN} ... {END} markers"
    block = text[text.index(BEGIN) : text.index(END)]
    lines = [line for line in block.splitlines() if line.startswith("|")]
    assert lines and tuple(_cells(lines[0])) == HEADER, f"the plugin table's header must be {HEADER}"
    return [_cells(line) for line in lines[2:]]


def expected_table(described: dict[tuple[str, str], str]) -> str:
    rows = [f"| {' | '.join(HEADER)} |", "|" + "---|" * len(HEADER)]
    for kind, name, keys in registry_rows():
        rows.append(f"| {kind} | {name} | {keys} | {described.get((kind, name)) or 'TODO: say what it is'} |")
    return "\n".join(rows)


def test_plugin_table_is_the_registry() -> None:
    table = readme_table()
    described = {(row[0], row[1]): row[3] for row in table if len(row) == len(HEADER)}
    found = [tuple(row[:3]) for row in table]
    assert found == registry_rows(), (
        "README.md's plugin table differs from the registry; replace it with:\n\n" + expected_table(described)
    )
    assert all(len(row) == len(HEADER) and row[3] for row in table), "every plugin row needs a `what`"


def test_first_commands_are_the_main_job_and_the_tests() -> None:
    text = README.read_text(encoding="utf-8")
    first_block = text.split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:] if line.strip()]
    assert commands[:3] == [MAIN_JOB, TESTS, FAST_TIER]


def test_local_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    missing = [t for t in targets if "://" not in t and not (README.parent / t).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_short_and_not_a_work_log() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/ or bench/README.md"
    logged = [f"{n}: {line}" for n, line in enumerate(lines, 1) if WORK_LOG.search(line)]
    assert not logged, "README.md reads as a work log here:\n" + "\n".join(logged)
