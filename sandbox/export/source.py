"""What to export: a spec, its network with weights, and where each came from.

An export starts from a `sandbox train` run directory (spec.yaml, model.safetensors, metrics.json),
a `sandbox search` run directory (its `best/` is such a run directory, for the best trial) or a
spec file with optional weights. Whatever the start, the result is one `Exportable`, so the
format writers never care where a network came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from sandbox.errors import SandboxError
from sandbox.model.builder import InceptionNet, build
from sandbox.model.weights import load_weights
from sandbox.runs import METRICS_FILE, open_run
from sandbox.spec.load import Spec, load_spec
from sandbox.train.datasets import known_class_names


@dataclass(frozen=True)
class Exportable:
    """A network ready to export: eval mode, weights loaded, aux heads (training only) left out."""

    spec: Spec
    model: InceptionNet
    weights_origin: Path | None  # None: untrained
    origin: str  # where the spec came from, in words
    accuracy: str  # measured accuracy and where, in words
    classes: tuple[str, ...] | None  # class names, None where the sandbox knows none

    def state_dict(self) -> dict[str, Tensor]:
        """The weights an exported model loads: the network's state dict without aux heads."""
        return {k: v for k, v in self.model.state_dict().items() if not k.startswith("aux.")}


def resolve(
    source: str | Path, *, weights: str | Path | None = None, plugin_files: Sequence[str | Path] = ()
) -> Exportable:
    """The network a run directory or spec file describes, with the weights it names or `weights`."""
    source = Path(source)
    if source.is_dir():
        run = open_run(source, weights=weights, plugin_files=plugin_files)
        origin = f"best trial of search run {source}" if run.path != source else f"train run {source}"
        classes = class_names(run.spec, run.metrics)
        accuracy = _accuracy(run.metrics, run.path)
        return Exportable(run.spec, run.model, run.weights, origin, accuracy, classes)
    if not source.is_file():
        raise SandboxError(f"{source} does not exist (expected a run directory or a spec file)")
    spec = load_spec(source, plugin_files=plugin_files)
    model = build(spec)
    if weights is not None:
        load_weights(model, Path(weights))
    model.eval()
    weights_path = Path(weights) if weights is not None else None
    return Exportable(spec, model, weights_path, f"spec {source}", _accuracy(None, source.parent), class_names(spec))


def class_names(spec: Spec, metrics: Mapping[str, Any] | None = None) -> tuple[str, ...] | None:
    """The class names the run trained with (metrics.json's `dataset.class_names`), else those its
    dataset is known to have without reading it (the MNIST family's); None where neither says."""
    dataset = (metrics or {}).get("dataset")
    names = dataset.get("class_names") if isinstance(dataset, Mapping) else None
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        names = known_class_names(spec.data.dataset)
    return tuple(names) if names is not None and len(names) == spec.classes else None


def _accuracy(metrics: Mapping[str, Any] | None, run: Path) -> str:
    """What `sandbox train` measured, on which data and how trained, in words (metrics keys may be absent)."""
    if not metrics:
        return "not measured (exported from a spec, not from a training run)"
    dataset = metrics.get("dataset")
    data = dataset if isinstance(dataset, Mapping) else {}
    found = []
    for key, split, where in (
        ("test_accuracy", "test", f"the {data.get('name', 'Fashion-MNIST')} test set"),
        ("val_accuracy", "val", "validation"),
    ):
        if isinstance(metrics.get(key), int | float):
            images = f" ({data[split]:,} images)" if isinstance(data.get(split), int) else ""
            found.append(f"{metrics[key]:.2%} on {where}{images}")
    epochs = metrics.get("epochs")
    how = [f"{epochs} epoch{'s' * (epochs != 1)}"] if isinstance(epochs, int) else []
    how += [str(metrics["device_name"])] if "device_name" in metrics else []
    how += [f"{metrics['train_precision']} steps, measured in fp32"] if "train_precision" in metrics else []
    trained = f", trained {', '.join(how)}" if how else ""
    return f"{', '.join(found) or 'none recorded'}{trained} (from {run / METRICS_FILE})"
