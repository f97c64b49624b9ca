"""The verbs as Python calls that return objects: what `sandbox train`, `search`, `evaluate` and
`export` do, for a notebook.

    import sandbox

    run = sandbox.train("fmnist_baseline", epochs=5, lr=0.05, out="runs/base")
    run.test_accuracy, run.history[-1]["val_loss"], run.path
    result = sandbox.evaluate(run)  # or a run directory; a search's stands for its best trial
    result.accuracy, result.per_class["T-shirt/top"]
    found = sandbox.search("quickstart", trials=8, budget="20M", out="runs/qs")
    found.best, found.leaderboard[0], found.study
    sandbox.export(found.best, "onnx")  # [Path("quickstart_trial3.onnx")]

`train`'s keyword arguments beyond the named ones are `train:` keys (`epochs=5` is `train.epochs:
5`), `search`'s are its flags; `overrides={"input.size": 96}` sets any key, as `--set` does. Bad
values raise `SpecError` naming the key, as the command line would print it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.runs import Run

if TYPE_CHECKING:
    from sandbox.export.source import Exportable
    from sandbox.search.flow import SearchResult

EpochHook = Callable[[int, dict[str, Any]], None]


@dataclass(frozen=True)
class Evaluation:
    """A run's test accuracy re-measured from its saved files, overall and per class."""

    run_dir: Path
    classes: dict[str, tuple[int, int]]  # per class: test images, and how many were classified right
    recorded: float | None  # the test accuracy metrics.json recorded at training time
    dataset: str

    @property
    def images(self) -> int:
        return sum(n for n, _ in self.classes.values())

    @property
    def accuracy(self) -> float:
        return sum(right for _, right in self.classes.values()) / self.images

    @property
    def per_class(self) -> dict[str, float]:
        return {name: right / max(n, 1) for name, (n, right) in self.classes.items()}


def train(
    spec: str | Path,
    *,
    out: str | Path | None = None,
    epochs: int | None = None,
    seed: int | None = None,
    device: str = "auto",
    threads: int | None = None,
    data_dir: str | Path | None = None,
    plugins: Sequence[str | Path] = (),
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    resume: bool = False,
    on_epoch: EpochHook | None = None,
    say: Callable[[str], None] | None = None,
    **train_keys: Any,
) -> Run:
    """Train a concrete spec (a file or a shipped name) and return its run. `epochs` and `seed` override
    the recipe's for this run only (as `--epochs`, `--seed`); `resume=True` goes on from the checkpoint
    in `out`."""
    from sandbox.errors import SandboxError, SpecError, describe
    from sandbox.runs import concrete_raw, file_name
    from sandbox.spec.overrides import as_settings, load_overridden
    from sandbox.train.device import resolve_device, set_cpu_threads
    from sandbox.train.loop import train_run

    if resume and out is None:
        raise SpecError("out", "resume=True goes on in a run directory: give it as out")
    resolved = str(resolve_device(device))
    set_cpu_threads(threads)
    loaded = load_overridden(spec, as_settings(overrides, train_keys), plugin_files=plugins)
    loaded = dataclasses.replace(loaded, raw=concrete_raw(loaded, plugins))  # spec.yaml must rebuild it
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(out) if out is not None else Path("runs") / f"{file_name(loaded.name)}-{stamp}"
    try:
        metrics = train_run(
            loaded,
            out_dir=run_dir,
            epochs=epochs,
            seed=seed,
            device=resolved,
            data_dir=Path(data_dir) if data_dir is not None else None,
            on_epoch=on_epoch,
            resume=resume,
            watch=True,
            say=say,
        )
    except OSError as err:  # history.csv or TensorBoard's events on a full disk: the run stops, in one line
        where = err.filename or f"the run directory {run_dir}"
        raise SandboxError(f"training stopped: cannot write {where}: {err.strerror or describe(err)}") from err
    return Run(run_dir, metrics)


def search(
    spec: str | Path | Mapping[str, Any], *, say: Callable[[str], None] = print, **settings: Any
) -> SearchResult:
    """Search a space (a file, a shipped name or a mapping) as `sandbox search` does, rerun to resume;
    `settings` are its flags by name (`sandbox.search.flow.SearchSettings`: trials, budget, out,
    overrides, ...). The result holds the study, the best trial's run and the leaderboard."""
    from sandbox.search.flow import search as run_search
    from sandbox.search.flow import search_settings_from

    return run_search(spec, search_settings_from(settings), say)


def export(
    run: Run | str | Path,
    format: str = "py",
    *,
    out: str | Path | None = None,
    weights: str | Path | None = None,
    plugins: Sequence[str | Path] = (),
    subnet: int | None = None,
    data_dir: str | Path | None = None,
) -> list[Path]:
    """Write a run's network (a search's run directory stands for its best trial; a spec file exports
    untrained, or with `weights`; `subnet=K`: a one-shot search's K-th best scored subnet with the
    supernet's weights, its batch norms measured on the search's data in `data_dir`) as a standalone
    `format` file; returns the files written."""
    from sandbox.export import export as write_export
    from sandbox.export import write

    source = run.path if isinstance(run, Run) else run
    if subnet is None:
        return write_export(source, out, fmt=format, weights=weights, plugin_files=plugins)
    return write(
        subnet_exportable(source, subnet, data_dir=data_dir, plugins=plugins), Path(out) if out else None, format
    )


def subnet_exportable(
    run_dir: str | Path, rank: int, *, data_dir: str | Path | None = None, plugins: Sequence[str | Path] = ()
) -> Exportable:
    """A one-shot search's `rank`-th best scored subnet (1 = best) with the supernet's weights, ready for
    `sandbox.export.write`: the same network an export of its concrete spec with those weights gives."""
    from sandbox.export.source import Exportable, class_names
    from sandbox.search.oneshot.export import inherited_subnet

    found = inherited_subnet(
        Path(run_dir), rank, data_dir=Path(data_dir) if data_dir is not None else None, plugin_files=plugins
    )
    return Exportable(found.spec, found.model, found.checkpoint, found.origin, found.accuracy, class_names(found.spec))


def evaluate(
    run: Run | str | Path,
    *,
    device: str = "auto",
    threads: int | None = None,
    data_dir: str | Path | None = None,
    plugins: Sequence[str | Path] = (),
) -> Evaluation:
    """Re-measure a run's test accuracy from its saved files, as training measured it; a search's run
    directory stands for its best trial. A dataset whose classes are not the run's is refused."""
    import torch

    from sandbox.errors import SandboxError
    from sandbox.runs import open_run
    from sandbox.train.data import load_for, names_text
    from sandbox.train.device import resolve_device, set_cpu_threads
    from sandbox.train.loop import predict

    resolved = resolve_device(device)
    set_cpu_threads(threads)
    opened = open_run(run.path if isinstance(run, Run) else run, device=resolved, plugin_files=plugins)
    spec, model, metrics, run_dir = opened.spec, opened.model, opened.metrics, opened.path
    data = load_for(spec, resolved, Path(data_dir) if data_dir is not None else None)
    recorded_data = metrics.get("dataset")
    trained_on = recorded_data.get("class_names") if isinstance(recorded_data, dict) else None
    if isinstance(trained_on, list) and trained_on != list(data.classes):
        raise SandboxError(
            f"{run_dir} was trained on the classes {names_text(trained_on)}, but {data.name} in "
            f"{data.root} has {names_text(data.classes)}: not the dataset it was trained on"
        )
    predicted = predict(model, data.test, batch=spec.train.batch_size).cpu()  # as the run measured it
    labels = data.test.labels.cpu()
    total = torch.bincount(labels, minlength=len(data.classes)).tolist()
    right = torch.bincount(labels[predicted == labels], minlength=len(data.classes)).tolist()
    recorded = metrics.get("test_accuracy")
    classes = {name: (n, r) for name, n, r in zip(data.classes, total, right, strict=True)}
    return Evaluation(run_dir, classes, recorded if isinstance(recorded, float) else None, data.name)
