"""The specs that ship with the package, by name: `sandbox search quickstart` as timm's `create_model`.

A wheel carries them in `sandbox/specs/` (setup.py copies the repository's `search_spaces/` there
at build time); a source checkout, editable installs included, reads `search_spaces/` itself, so
an edit there is seen at once. Specs name each other by file name (`search.reference:
fmnist_baseline.yaml`), relative to their folder, which holds in both places.

Standard library only: the commands resolve a spec argument while parsing, before torch loads.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from sandbox.errors import did_you_mean

PACKAGE = Path(__file__).resolve().parents[1]
INSTALLED = PACKAGE / "specs"  # in a wheel
SOURCE = PACKAGE.parent / "search_spaces"  # in the repository


def specs_dir() -> Path:
    """The folder the shipped specs are read from."""
    return INSTALLED if INSTALLED.is_dir() else SOURCE


def shipped_specs(pattern: str = "*") -> dict[str, Path]:
    """Name → file of each shipped spec whose name matches the fnmatch `pattern`, sorted by name."""
    folder = specs_dir()
    files = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    return {file.stem: file for file in files if fnmatch.fnmatchcase(file.stem, pattern)}


def list_specs(pattern: str = "*") -> list[str]:
    """The names of the shipped specs matching `pattern` (`"inception_*"`), as timm's `list_models`."""
    return list(shipped_specs(pattern))


def resolve_spec(source: str | Path) -> Path:
    """The file `source` names: a path that exists wins, else a shipped spec of that name (`.yaml`
    optional); anything else comes back as given, so reading it reports the missing file."""
    path = Path(source)
    if path.exists() or path.name != str(source):  # a directory in it: a path, never a name
        return path
    return shipped_specs().get(path.name.removesuffix(".yaml"), path)


def shipped_name(path: Path) -> str | None:
    """The name `path` has among the shipped specs, None for a file of the user's."""
    shipped = shipped_specs().get(path.stem)
    return path.stem if shipped is not None and shipped.resolve() == path.resolve() else None


def unknown_spec_hint(source: str | Path) -> str:
    """For a spec that is neither a file nor a shipped name: the closest shipped names, if any."""
    name = Path(source).name.removesuffix(".yaml")
    return did_you_mean(name, list_specs()) if Path(source).name == str(source) else ""
