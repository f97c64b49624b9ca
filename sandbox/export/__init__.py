"""Standalone model files: `export(source, fmt, out)` for `sandbox export` and `sandbox.export(...)`.

`FORMATS` is the one table of export formats: a new format is one entry here (its suffix, its
writer as `module:function`, its help line), and the command's `--format` choices, its default
file name and the Python API all read it. Writers are imported only when used, so this module
stays light enough for `sandbox export --help`. The package is also the call `sandbox.export(...)`
(`sandbox.verbs`).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.errors import SandboxError, SpecError, did_you_mean
from sandbox.verbs import make_callable

if TYPE_CHECKING:
    from sandbox.export.source import Exportable


@dataclass(frozen=True)
class Format:
    """An export format: the file suffix it writes, its writer, what `--help` says of it."""

    suffix: str
    writer: str  # "module:function", a function (Exportable, out) -> the files written
    help: str

    def write(self) -> Callable[[Exportable, Path], list[Path]]:
        module, function = self.writer.split(":")
        return getattr(importlib.import_module(module), function)


FORMATS = {
    "py": Format(".py", "sandbox.export.python:write_python", "Python file + weights beside it (default)"),
    "pt2": Format(".pt2", "sandbox.export.program:write_pt2", "torch.export program"),
    "onnx": Format(".onnx", "sandbox.export.program:write_onnx", "needs the onnx extra"),
}


make_callable(__name__, "export")


def export(
    source: str | Path,
    out: str | Path | None = None,
    *,
    fmt: str = "py",
    weights: str | Path | None = None,
    plugin_files: Sequence[str | Path] = (),
) -> list[Path]:
    """Export the network of a run directory or spec file to `out`; returns the files written."""
    from sandbox.export.source import resolve

    exportable = resolve(source, weights=weights, plugin_files=plugin_files)
    return write(exportable, Path(out) if out is not None else None, fmt)


def write(exportable: Exportable, out: Path | None, fmt: str = "py") -> list[Path]:
    """Write `exportable` as `fmt` to `out` (default: the spec's name with the format's suffix, in the
    current directory); a place that cannot be written is one line naming it."""
    if fmt not in FORMATS:
        raise SpecError(
            "--format", f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}{did_you_mean(fmt, FORMATS)}"
        )
    out = out if out is not None else Path(re.sub(r"\W", "_", exportable.spec.name) + FORMATS[fmt].suffix)
    try:
        return FORMATS[fmt].write()(exportable, out)
    except OSError as err:  # a read-only directory, a file where a directory should be, a full disk
        culprit = f" ({err.filename})" if err.filename and Path(err.filename) != out else ""
        raise SandboxError(f"cannot write --out {out}{culprit}: {err.strerror or err}") from err
