"""What a researcher watches while a run trains: history.csv, TensorBoard events, curves.png.

`history.csv` gets one row per epoch as the epoch ends, flushed, so `tail -f` and a spreadsheet see
the run as it goes; a resumed run rewrites it from its checkpoint's history first, dropping rows
of epochs trained after that checkpoint. TensorBoard event files (RUN_DIR/tensorboard) are written
when the `tensorboard` package is installed (`pip install -e ".[tensorboard]"`), else skipped with a
note. `curves.png` plots training and validation loss, training and validation accuracy, and the
learning rate (each epoch's peak and mean) per epoch; it is drawn at each checkpoint and at the end.
What each column measures is in `sandbox.train.loop`'s docstring.

A search's trials write history.csv only: events and plots are for runs someone watches
(`sandbox train`), and a plot per trial would cost each trial a matplotlib import.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sandbox.runs import atomic_write

HISTORY_FILE = "history.csv"
CURVES_FILE = "curves.png"
EVENTS_DIR = "tensorboard"
COLUMNS = (
    "epoch", "loss", "train_accuracy", "val_loss", "val_accuracy", "lr_peak", "lr_mean",
    "images_per_second", "images", "seconds",
)  # fmt: skip
SCALARS = ("loss", "train_accuracy", "val_loss", "val_accuracy", "lr_peak", "lr_mean", "images_per_second")
PANELS = (  # curves.png: a panel's title and its (history key, legend label) lines
    ("loss", (("loss", "train"), ("val_loss", "validation"))),
    ("accuracy", (("train_accuracy", "train"), ("val_accuracy", "validation"))),
    ("learning rate", (("lr_peak", "peak"), ("lr_mean", "mean"))),
)


def summary_writer_class() -> Any | None:
    """torch's SummaryWriter, or None when the tensorboard package is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch.utils.tensorboard imports the tensorboard package
        return None
    return SummaryWriter


class RunLog:
    """history.csv (always), and with `watch` TensorBoard events and curves.png, for one run directory."""

    def __init__(
        self, out_dir: Path, history: Sequence[Mapping[str, Any]], *, watch: bool, say: Callable[[str], None]
    ) -> None:
        self.out_dir = out_dir
        self.watch = watch
        with (out_dir / HISTORY_FILE).open("w", newline="") as file:
            rows = csv.DictWriter(file, COLUMNS, extrasaction="ignore")
            rows.writeheader()
            rows.writerows(history)
        self.events = None
        if watch:
            writer = summary_writer_class()
            if writer is None:
                say('tensorboard is not installed: no event files (pip install -e ".[tensorboard]")')
            else:  # purge_step drops events of epochs after the checkpoint a resumed run starts from
                self.events = writer(log_dir=str(out_dir / EVENTS_DIR), purge_step=len(history) + 1)

    def add(self, record: Mapping[str, Any]) -> None:
        """One epoch's row, appended and closed (so flushed): nothing is left open if the run is stopped."""
        with (self.out_dir / HISTORY_FILE).open("a", newline="") as file:
            csv.DictWriter(file, COLUMNS, extrasaction="ignore").writerow(record)
        if self.events is not None:
            for key in SCALARS:
                if key in record:  # a checkpoint written before a column existed lacks it
                    self.events.add_scalar(key, record[key], record["epoch"])
            self.events.flush()

    def plot(self, history: Sequence[Mapping[str, Any]]) -> None:
        if self.watch and history:
            plot_curves(history, self.out_dir / CURVES_FILE)

    def close(self) -> None:
        if self.events is not None:
            self.events.close()


def plot_curves(history: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Loss, accuracy (train and validation each) and learning rate against the epoch, side by side,
    written atomically. A line is left out where no epoch has its column (a history resumed from a
    checkpoint written before the column existed)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(1, len(PANELS), figsize=(12, 3.2), layout="constrained")
    marker = "o" if len(history) < 30 else None
    for ax, (title, lines) in zip(axes, PANELS, strict=True):
        for key, label in lines:
            points = [(record["epoch"], record[key]) for record in history if record.get(key) is not None]
            if points:
                ax.plot(*zip(*points, strict=True), marker=marker, label=label)
        if ax.lines:
            ax.legend(fontsize="small")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    try:
        atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=100))
    finally:
        plt.close(figure)
