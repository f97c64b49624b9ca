"""A run directory: `spec.yaml`, `model.safetensors`, then `metrics.json`, the mark of a finished run.

The one home of runs, below train, search and export (each reads or writes them): the files'
names, their atomic writes, the one rule for what a directory stands for (`run_directory`),
`open_run` (the one way a finished run is read back) and `Run`, what the Python API hands back.

Every file is written to a temporary name and renamed into place, and `metrics.json` comes last
(a stale one is removed when spec.yaml is written, the run's first file), so an interrupted or
failed run never leaves a directory that looks complete, nor a half-written file; a run refused
before it writes anything (a resume with another recipe) leaves the directory as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save
from torch import nn

from sandbox.errors import SandboxError, describe
from sandbox.model.builder import InceptionNet, build
from sandbox.model.weights import load_weights
from sandbox.spec.checks import kind_of
from sandbox.spec.load import Spec, load_spec

SPEC_FILE = "spec.yaml"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class Run:
    """A finished training run: its directory and what its metrics.json holds."""

    path: Path
    metrics: dict[str, Any]

    @property
    def val_accuracy(self) -> float:
        return float(self.metrics["val_accuracy"])

    @property
    def test_accuracy(self) -> float:
        return float(self.metrics["test_accuracy"])

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.metrics["history"])


def file_name(name: str) -> str:
    """A spec's `name` as one safe file name for its default run directory under runs/: letters,
    digits, `.`, `-` and `_` only, so `../../x` or a `/` cannot write outside runs/."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:100] or "run"


def prepare(out_dir: Path) -> Path:
    """Create the directory and prove it writable before any training time is spent; nothing in it
    changes yet, since a resume may still be refused."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".probe-"):
            pass
    except OSError as err:
        raise SandboxError(f"cannot write the run directory {out_dir}: {err.strerror or err}") from err
    return out_dir


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """`write(temporary)`, then the temporary renamed to `path`: a reader sees the old file or the new, never half.

    A failed write (a full disk, a read-only directory) is one line naming the file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as err:
        raise SandboxError(f"cannot write {path}: {err.strerror or describe(err)}") from err
    finally:
        temporary.unlink(missing_ok=True)


def replace_directory(source: Path, path: Path) -> None:
    """Copy the directory `source` to `path`, replacing what is there; a reader sees the old copy, the new,
    or for a moment none, never a mix.

    Processes doing it at once (searches sharing a run directory report together) each stage and
    set aside under names of their own, and a rename that finds another's copy in place sets that
    one aside and tries again."""
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    aside = path.with_name(f".{path.name}.{os.getpid()}.old")
    try:
        shutil.rmtree(staging, ignore_errors=True)  # a crashed copy's leftovers
        shutil.copytree(source, staging)
        while True:
            try:
                os.rename(staging, path)
                break
            except OSError as err:
                if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            with contextlib.suppress(FileNotFoundError):  # another process set it aside first
                os.rename(path, aside)
            shutil.rmtree(aside, ignore_errors=True)
    except OSError as err:
        raise SandboxError(f"cannot write {path}: {err.strerror or describe(err)}") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def concrete_raw(spec: Spec, plugin_files: Sequence[str | Path] = ()) -> dict[str, Any]:
    """The spec as a mapping that rebuilds the network anywhere: plugin paths made absolute, `--plugin` files added."""
    raw = dict(spec.raw)
    base = spec.source.resolve().parent if spec.source else Path.cwd()
    plugins = [str((base / p).resolve()) for p in raw.get("plugins") or []]
    plugins += [str(Path(p).resolve()) for p in plugin_files if str(Path(p).resolve()) not in plugins]
    if plugins:
        raw["plugins"] = plugins
    return raw


def write_spec(out_dir: Path, raw: Mapping[str, Any]) -> None:
    """The run's first write, once everything is checked: the old run's metrics.json goes first."""
    (out_dir / METRICS_FILE).unlink(missing_ok=True)
    atomic_write(out_dir / SPEC_FILE, lambda p: p.write_text(yaml.safe_dump(dict(raw), sort_keys=False)))


def write_weights(out_dir: Path, model: nn.Module) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(out_dir / WEIGHTS_FILE, lambda p: p.write_bytes(save(state)))  # usual file mode, unlike save_file


def write_metrics(out_dir: Path, metrics: Mapping[str, Any]) -> None:
    """metrics.json, strict JSON: a non-finite number (an images/s over zero seconds) is written as null."""
    text = json.dumps(_finite(metrics), indent=2, allow_nan=False) + "\n"
    atomic_write(out_dir / METRICS_FILE, lambda p: p.write_text(text))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """A finished run's metrics; a directory without them is not a finished run."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        raise SandboxError(f"{run_dir} is not a finished run: it has no {METRICS_FILE}")
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SandboxError(f"cannot read {path}: {err}") from err
    if not isinstance(metrics, dict):  # valid JSON, but every reader looks keys up in it
        raise SandboxError(f"{path} holds {kind_of(metrics)}, not a JSON object of metrics")
    return metrics


def run_directory(source: Path) -> Path:
    """The trained run a directory stands for: a `sandbox search` run's best trial (its `best/`), or
    the `sandbox train` run itself; the one rule `export`, `predict` and `evaluate` share."""
    run = source / "best" if (source / "best" / METRICS_FILE).is_file() else source
    if not (run / SPEC_FILE).is_file():
        raise SandboxError(
            f"{source} is not a run directory: expected {SPEC_FILE} and {WEIGHTS_FILE} from `sandbox train`, "
            f"or best/{METRICS_FILE} from `sandbox search`"
        )
    return run


@dataclass(frozen=True)
class OpenedRun:
    """A finished run read back: its directory, spec, trained network (eval mode) and metrics."""

    path: Path  # the run directory itself (a search's `best/`)
    spec: Spec
    model: InceptionNet
    metrics: dict[str, Any]
    weights: Path  # the weights loaded: the run's own, or the file given instead


def open_run(
    source: str | Path,
    *,
    device: str | torch.device = "cpu",
    weights: str | Path | None = None,
    plugin_files: Sequence[str | Path] = (),
) -> OpenedRun:
    """The finished run a directory stands for (a search's: its best trial) with its network built
    from its spec.yaml and its weights (or `weights`) loaded: the one rule `evaluate`, `predict` and
    `export` share."""
    run_dir = run_directory(Path(source))
    metrics = read_metrics(run_dir)  # no metrics: the run did not finish
    weights_path = Path(weights) if weights is not None else run_dir / WEIGHTS_FILE
    if not weights_path.is_file():
        raise SandboxError(f"{weights_path} not found: the run has no trained weights")
    spec = load_spec(run_dir / SPEC_FILE, plugin_files=plugin_files)
    model = build(spec, device=device)
    # its own weights not fitting the network its spec.yaml builds now: a plugin changed?
    own = f"the weights of {run_dir} do not fit the network its {SPEC_FILE} builds"
    load_weights(model, weights_path, device=device, unfit=own if weights is None else None)
    return OpenedRun(run_dir, spec, model.eval(), metrics, weights_path)
