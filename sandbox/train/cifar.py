"""CIFAR-10/100's python pickles, read without running code from them.

torchvision reads the batches with plain `pickle.load`, and a pickle can call any importable
function (`os.system`) while it loads: a `data_batch_1` from a mirror or a colleague would run
code on `train`. The reader here allows only what the release's pickles (protocol 2 from Python 2,
or the protocols a subset written by Python 3 uses) reference: numpy's array reconstruction, an
integer dtype, and `_codecs.encode` for latin-1 bytes; containers and numbers are pickle opcodes
that import nothing. Anything else is refused, naming the file.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from sandbox.errors import SandboxError, describe

INTEGER_KINDS = "ui"  # the release stores uint8 images; labels are ints, a subset may hold them in an array


class _Refused(pickle.UnpicklingError):
    """A reference outside the release's types: refused before it is called."""


def _dtype(spec: Any, align: bool = False, copy: bool = False) -> np.dtype[Any]:
    """`numpy.dtype` for integer dtypes only: an object dtype would unpickle arbitrary elements."""
    dtype = np.dtype(spec, align=align, copy=copy)
    if dtype.kind not in INTEGER_KINDS:
        raise _Refused(f"holds an array of dtype {dtype}, not of integers")
    return dtype


def _latin1(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` as protocol 2 uses it for bytes, with the latin-1 codec only (no codec lookups)."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise _Refused(f"encodes bytes as {encoding!r}, not latin-1")
    return text.encode("latin-1")


def _allowed() -> dict[tuple[str, str], Any]:
    """numpy's own array reconstructors are found through numpy's pickling rather than by module
    path: numpy.core became numpy._core in numpy 2, and a release pickled under either names either."""
    reconstruct: Any = np.zeros(1).__reduce__()[0]
    frombuffer: Any = np.zeros(1).__reduce_ex__(5)[0]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _dtype,
        ("_codecs", "encode"): _latin1,
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{package}.numeric", "_frombuffer")] = frombuffer
    return allowed


ALLOWED = _allowed()


class _Unpickler(pickle.Unpickler):
    """Resolves only the globals in ALLOWED."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"refers to {module}.{name}") from None


def load(path: Path) -> Any:
    """The object pickled in `path`, keys and strings as torchvision reads them (latin-1).

    A file that refers to anything but arrays, containers, strings and numbers is refused in one
    line naming it, before anything it names runs."""
    try:
        data = path.read_bytes()
        return _Unpickler(io.BytesIO(data), encoding="latin1").load()
    except OSError as err:
        raise SandboxError(f"cannot read CIFAR file {path}: {err.strerror or describe(err)}") from err
    except _Refused as err:
        raise SandboxError(
            f"{path}: refused, it {err}; a CIFAR pickle holds only integer arrays, lists, dicts, strings "
            "and numbers, and nothing in this one was run"
        ) from err


def field(entry: Any, key: str, path: Path) -> Any:
    """`entry[key]`, whether the file's keys are str (latin-1, as torchvision reads Python 2's)
    or bytes (a subset re-pickled after `encoding='bytes'`)."""
    if isinstance(entry, dict):
        for candidate in (key, key.encode("latin-1")):
            if candidate in entry:
                return entry[candidate]
    raise SandboxError(f"{path}: not a CIFAR file, it has no {key!r} entry")


def text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)
