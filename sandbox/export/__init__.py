"""Standalone model files: `export(source, fmt, out)` for `python -m sandbox export`.

`py` is a Python file needing only torch (plus its weights beside it), `pt2` a `torch.export`
program needing no code at all, `onnx` the same graph for other runtimes (optional extra `onnx`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sandbox.errors import SandboxError
from sandbox.export.program import write_onnx, write_pt2
from sandbox.export.python import write_python
from sandbox.export.source import Exportable, resolve

FORMATS = {"py": write_python, "pt2": write_pt2, "onnx": write_onnx}

__all__ = ["FORMATS", "Exportable", "export", "resolve", "write"]


def export(
    source: str | Path,
    out: str | Path,
    *,
    fmt: str = "py",
    weights: str | Path | None = None,
    plugin_files: Sequence[str | Path] = (),
) -> list[Path]:
    """Export the network of a run directory or spec file to `out`; returns the files written."""
    exportable = resolve(source, weights=weights, plugin_files=plugin_files)
    return write(exportable, Path(out), fmt)


def write(exportable: Exportable, out: Path, fmt: str = "py") -> list[Path]:
    """Write `exportable` as `fmt` to `out`; a place that cannot be written is one line naming it."""
    try:
        return FORMATS[fmt](exportable, out)
    except OSError as err:  # a read-only directory, a file where a directory should be, a full disk
        culprit = f" ({err.filename})" if err.filename and Path(err.filename) != out else ""
        raise SandboxError(f"cannot write --out {out}{culprit}: {err.strerror or err}") from err
