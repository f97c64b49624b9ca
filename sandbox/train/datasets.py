"""The torchvision releases a spec can train on: where their files are, fetching them, reading them.

Each release is read into uint8 tensors (N, C, H, W) with int64 labels and the class names the
release itself carries: MNIST's IDX files by torchvision's own class, CIFAR's pickles by
`sandbox.train.cifar`, which runs no code from them. CIFAR is read without torchvision's per-file
md5 check, so a subset of the release (as the Fashion-MNIST subset in shared/data is of its
release) or a test's own pickles read too; a download is still checked against the archive's md5.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.datasets
from torch import Tensor
from torchvision.datasets import CIFAR10, MNIST, VisionDataset

from sandbox.errors import SandboxError, describe
from sandbox.spec.datasets import DATASETS, FULL, SAMPLE, Dataset
from sandbox.train import cifar

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data" / "FashionMNIST" / "raw"
RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _safe(cls: type[CIFAR10]) -> type[CIFAR10]:
    """torchvision's CIFAR class (its file names, download and archive check) reading the pickles
    through `sandbox.train.cifar`, which runs no code from them, instead of plain `pickle.load`.

    Each file's md5 is not checked, so a subset of the release or a test's own pickles read too."""

    def __init__(self: CIFAR10, root: str | Path, train: bool = True, download: bool = False) -> None:
        VisionDataset.__init__(self, root)
        self.train = train
        if download:
            self.download()
        folder = Path(self.root) / self.base_folder
        missing = [name for name, _ in self.train_list + self.test_list if not (folder / name).is_file()]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} not found")
        key = "labels" if self.meta["key"] == "label_names" else "fine_labels"  # CIFAR-10's, CIFAR-100's
        images: list[np.ndarray] = []
        labels: list[int] = []
        for name, _ in self.train_list if train else self.test_list:
            entry = cifar.load(folder / name)
            images.append(np.asarray(cifar.field(entry, "data", folder / name)).reshape(-1, 3, 32, 32))
            labels.extend(int(label) for label in cifar.field(entry, key, folder / name))
        self.data = np.concatenate(images).transpose((0, 2, 3, 1))  # HWC, as torchvision gives it
        self.targets = labels
        meta = folder / self.meta["filename"]
        self.classes = [cifar.text(name) for name in cifar.field(cifar.load(meta), self.meta["key"], meta)]

    return type(cls.__name__, (cls,), {"__init__": __init__})


@dataclass(frozen=True)
class Release:
    """A torchvision dataset class and the files it reads under a root."""

    label: str  # in messages
    reader: type[VisionDataset]
    folder: str  # relative to the root
    files: tuple[str, ...]  # in `folder`, all needed
    archive: str  # what else torchvision unpacks instead of downloading, in words
    mean: tuple[float, ...]  # the release's own per-channel mean and std in [0, 1], as published for it
    std: tuple[float, ...]

    def has_files(self, root: Path) -> bool:
        return all((root / self.folder / name).is_file() for name in self.files)


def _release(dataset: Dataset) -> Release:
    """Where torchvision's class for `dataset` keeps its files: CIFAR's pickles in its base folder,
    the MNIST family's IDX files in CLASS/raw."""
    cls = getattr(torchvision.datasets, str(dataset.torchvision))
    if issubclass(cls, CIFAR10):
        files = tuple(name for name, _ in cls.train_list + cls.test_list) + (cls.meta["filename"],)
        folder, archive, reader = cls.base_folder, f"or {cls.filename} in DIR", _safe(cls)
    else:
        folder, files, archive, reader = f"{cls.__name__}/raw", RAW_FILES, "or their .gz", cls
    return Release(dataset.label, reader, folder, files, archive, dataset.mean, dataset.std)


RELEASES = {name: _release(dataset) for name, dataset in DATASETS.items() if dataset.torchvision is not None}


@dataclass(frozen=True)
class Raw:
    """A release as read: uint8 images (N, C, H, W) and int64 labels per split, and its class names."""

    train: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]
    classes: tuple[str, ...]


def read(name: str, root: Path) -> Raw:
    release = RELEASES[name]
    train, classes = _read_split(release, root, train=True)
    test, _ = _read_split(release, root, train=False)
    return Raw(train, test, classes)


def _read_split(release: Release, root: Path, *, train: bool) -> tuple[tuple[Tensor, Tensor], tuple[str, ...]]:
    try:
        dataset: Any = release.reader(root, train=train, download=False)
        images = torch.as_tensor(dataset.data)
        labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
    except SandboxError:
        raise
    except Exception as err:  # a truncated file, a bad pickle, a wrong magic number: all end the same way
        raise SandboxError(f"cannot read {release.label} in {root / release.folder}: {describe(err)}") from err
    # IDX gives (N, H, W) gray images, the CIFAR pickles (N, H, W, 3) as torchvision reorders them
    images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)
    classes = tuple(dataset.classes)
    split = "training" if train else "test"
    _check_labels(labels, len(classes), f"{release.label}'s {split} labels in {root / release.folder}")
    return (images.contiguous(), labels), classes


def _check_labels(labels: Tensor, classes: int, where: str) -> None:
    """Labels outside 0..classes-1 fail here, at load, rather than as an index error mid-training."""
    bad = labels[(labels < 0) | (labels >= classes)]
    if len(bad):
        raise SandboxError(f"{where}: label {int(bad[0])} is outside 0..{classes - 1} ({len(bad)} such labels)")


# ---------------------------------------------------------------------------- where the files are


def cache_dir() -> Path:
    """$SANDBOX_CACHE, else the user's cache directory (XDG), for downloads and the unpacked sample."""
    if os.environ.get("SANDBOX_CACHE"):
        return Path(os.environ["SANDBOX_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "inception-sandbox"


def sample_root() -> Path:
    """Unpack the bundled gzipped sample once (torchvision reads only unpacked files) and return its root.

    The directory is named by the archives' hash, so a newer sample never meets stale files.
    """
    archives = [SAMPLE_DIR / f"{name}.gz" for name in RAW_FILES]
    digest = hashlib.sha256(b"".join(a.read_bytes() for a in archives)).hexdigest()[:12]
    root = cache_dir() / f"sample-{digest}"
    raw = root / "FashionMNIST" / "raw"
    try:
        raw.mkdir(parents=True, exist_ok=True)
        for archive, name in zip(archives, RAW_FILES, strict=True):
            target = raw / name
            if not target.exists():
                temporary = target.with_name(f".{name}.{os.getpid()}.tmp")
                temporary.write_bytes(gzip.decompress(archive.read_bytes()))
                os.replace(temporary, target)  # atomic: a concurrent reader never sees half a file
    except OSError as err:
        raise SandboxError(
            f"cannot unpack the bundled sample into {raw} ({err.strerror or err}); "
            "set SANDBOX_CACHE to a writable directory"
        ) from err
    return root


def search_roots(data_dir: Path | None) -> list[Path]:
    """Where a release is looked for, in order: --data-dir/data.root, $SANDBOX_DATA, the cache."""
    roots = [data_dir] if data_dir is not None else []
    if os.environ.get("SANDBOX_DATA"):
        roots.append(Path(os.environ["SANDBOX_DATA"]).expanduser().resolve())
    roots.append(cache_dir() / "data")
    return roots


def find(name: str, data_dir: Path | None) -> Path:
    """The root holding release `name`, downloading it into the first place looked when missing."""
    release = RELEASES[name]
    roots = search_roots(data_dir)
    for root in roots:
        if release.has_files(root):
            return root
    try:
        with contextlib.redirect_stdout(sys.stderr):  # torchvision reports its download on stdout
            release.reader(roots[0], train=True, download=True)  # type: ignore[call-arg]
    except Exception as err:  # any failure to fetch (no network, disk full, bad mirror) ends the same way
        raise SandboxError(
            f"{release.label} not found (looked in {', '.join(str(r) for r in roots)}) and the download failed "
            f"({describe(err)}); put the files {', '.join(release.files)} in DIR/{release.folder}/ ({release.archive}) "
            f"and pass --data-dir DIR or set SANDBOX_DATA=DIR{_offline_hint(name)}"
        ) from err
    return roots[0]


def _offline_hint(name: str) -> str:
    return f", or use `data: {{dataset: {SAMPLE}}}`, which works offline" if name == FULL else ""


def known_class_names(name: str) -> Sequence[str] | None:
    """Class names known without reading any file: the MNIST family's are in torchvision's classes."""
    reader = RELEASES[name].reader if name in RELEASES else None
    return tuple(reader.classes) if reader is not None and issubclass(reader, MNIST) else None
