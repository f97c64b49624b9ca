"""Fashion-MNIST as uint8 tensors on the training device, with batched on-device augmentation.

The files are read by `torchvision.datasets.FashionMNIST` (its own IDX reader); after that the
whole dataset is one tensor on the device, so a batch is a slice and a search that trains many
candidates loads the data once (`load` caches per dataset, root, device and split).
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.datasets import FashionMNIST

from sandbox.errors import SandboxError, SpecError
from sandbox.train.config import SAMPLE, DataConfig

CLASS_NAMES = tuple(FashionMNIST.classes)
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data" / "FashionMNIST" / "raw"
RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SPLIT_SEED = 20140917  # fixed: the validation split never depends on the training seed


@dataclass(frozen=True)
class Split:
    """Images (N, 1, 28, 28) uint8 and labels (N,) int64, both on the training device."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Data:
    name: str
    root: Path
    train: Split
    val: Split
    test: Split

    def counts(self) -> dict[str, Any]:
        return {"name": self.name, "train": len(self.train), "val": len(self.val), "test": len(self.test)}


def fetch(config: DataConfig) -> Path:
    """The root of the dataset's files on disk, unpacked or downloaded first if they are not there.

    A search calls it once in the parent before any worker starts, so that workers never download
    into the same folder at once."""
    return sample_root() if config.dataset == SAMPLE else find_full(config.root)


def load(config: DataConfig, device: torch.device | str) -> Data:
    """The dataset on `device`, split into train/val/test; cached, so repeated runs load it once."""
    return _load(config.dataset, fetch(config), torch.device(device), config.val_fraction)


@functools.lru_cache(maxsize=4)
def _load(name: str, root: Path, device: torch.device, val_fraction: float) -> Data:
    train_images, train_labels = _read(root, train=True)
    test_images, test_labels = _read(root, train=False)
    order = torch.randperm(len(train_labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_val = max(1, round(len(order) * val_fraction))
    if n_val >= len(order):
        raise SpecError("data.val_fraction", f"leaves no training images out of {len(order)}")

    def split(images: Tensor, labels: Tensor, index: Tensor | None = None) -> Split:
        if index is not None:
            images, labels = images[index], labels[index]
        return Split(images.unsqueeze(1).contiguous().to(device), labels.long().to(device))

    return Data(
        name=name,
        root=root,
        train=split(train_images, train_labels, order[n_val:].sort().values),
        val=split(train_images, train_labels, order[:n_val].sort().values),
        test=split(test_images, test_labels),
    )


def _read(root: Path, *, train: bool) -> tuple[Tensor, Tensor]:
    try:
        dataset = FashionMNIST(root, train=train, download=False)
    except (RuntimeError, OSError, ValueError, AssertionError) as err:
        raise SandboxError(f"cannot read Fashion-MNIST in {root / 'FashionMNIST' / 'raw'}: {err}") from err
    return dataset.data, dataset.targets


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
    """Where the full release is looked for, in order: --data-dir/data.root, $SANDBOX_DATA, the cache."""
    roots = [data_dir] if data_dir is not None else []
    if os.environ.get("SANDBOX_DATA"):
        roots.append(Path(os.environ["SANDBOX_DATA"]).expanduser().resolve())
    roots.append(cache_dir() / "data")
    return roots


def _has_files(root: Path) -> bool:
    return all((root / "FashionMNIST" / "raw" / name).is_file() for name in RAW_FILES)


def find_full(data_dir: Path | None) -> Path:
    """The root holding the full release, downloading it into the first place looked when missing."""
    roots = search_roots(data_dir)
    for root in roots:
        if _has_files(root):
            return root
    try:
        with contextlib.redirect_stdout(sys.stderr):  # torchvision reports its download on stdout
            FashionMNIST(roots[0], train=True, download=True)
    except Exception as err:  # any failure to fetch (no network, disk full, bad mirror) ends the same way
        looked = ", ".join(str(r) for r in roots)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SandboxError(
            f"Fashion-MNIST not found (looked in {looked}) and the download failed ({reason}); put the four "
            f"files {', '.join(RAW_FILES)} (or their .gz) in DIR/FashionMNIST/raw/ and pass --data-dir DIR "
            f"or set SANDBOX_DATA=DIR, or use `data: {{dataset: {SAMPLE}}}`, which works offline"
        ) from err
    return roots[0]


# ---------------------------------------------------------------------------- batches and augmentation


def augment(images: Tensor, *, crop: int, flip: bool, generator: torch.Generator) -> Tensor:
    """Random crop after zero padding by `crop` pixels and random horizontal flip, as batched tensor ops."""
    n, channels, height, width = images.shape
    device = images.device
    if crop > 0:
        padded = F.pad(images, (crop, crop, crop, crop))
        dy = torch.randint(0, 2 * crop + 1, (n, 1, 1, 1), generator=generator, device=device)
        dx = torch.randint(0, 2 * crop + 1, (n, 1, 1, 1), generator=generator, device=device)
        rows = dy + torch.arange(height, device=device).view(1, 1, height, 1)
        cols = dx + torch.arange(width, device=device).view(1, 1, 1, width)
        batch = torch.arange(n, device=device).view(n, 1, 1, 1)
        channel = torch.arange(channels, device=device).view(1, channels, 1, 1)
        images = padded[batch, channel, rows, cols]
    if flip:
        flipped = torch.rand(n, generator=generator, device=device) < 0.5
        images = torch.where(flipped.view(n, 1, 1, 1), images.flip(3), images)
    return images


def to_float(images: Tensor, *, channels_last: bool) -> Tensor:
    """uint8 images → float in [0, 1], the input the network expects (it normalizes itself)."""
    x = images.float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
