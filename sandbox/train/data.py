"""A dataset as uint8 tensors shaped once for the spec, on the training device when it fits.

The releases are read by torchvision's own classes (`sandbox.train.datasets`), an image folder by
torchvision's decoder into an on-disk cache (`sandbox.train.imagefolder`). Then, once, at load
time: a missing validation (and, for an image folder, test) split is carved from the training
split with a fixed seed; images are converted to the spec's channels and resized to its input
size, antialiased; and the whole dataset goes to the training device if its uint8 form takes at
most `data.device_share` of the device's free memory. Otherwise it stays on the host (pinned on
CUDA) and each batch is gathered there and copied with `non_blocking`; augmentation is the same
batched tensor work on the device either way, never a per-sample Python transform.

The dataset's own per-channel mean and std (`Normalization`), what a spec without `normalize:`
trains with: a release's published constants at its own channels (a gray release's repeated for
RGB), else (an image folder, an RGB release read as gray) measured once on the training split as
loaded, after carving and shaping, so no validation or test image enters them. A note says which
(but for Fashion-MNIST, whose constants were always the default).

`load` caches per dataset, root, device, split and shape, so a search that trains many candidates
loads the data once (and measures the statistics once).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from sandbox.errors import SpecError
from sandbox.spec.datasets import IMAGE_FOLDER, SAMPLE
from sandbox.spec.recipe import DataConfig
from sandbox.train.datasets import FULL, RELEASES, find, read, sample_root
from sandbox.train.datasets import RAW_FILES as RAW_FILES  # re-exported: where the files are was here before
from sandbox.train.datasets import SAMPLE_DIR as SAMPLE_DIR
from sandbox.train.datasets import cache_dir as cache_dir
from sandbox.train.datasets import search_roots as search_roots
from sandbox.train.imagefolder import discover, read_folder
from sandbox.train.memory import device_free, require_host, size_text

if TYPE_CHECKING:
    from sandbox.spec.load import Spec

SPLIT_SEED = 20140917  # fixed: the validation split never depends on the training seed
RESIZE_CHUNK = 2048  # images resized at once: bounds the float copy resizing makes
STATS_CHUNK = 256  # images measured at once: bounds the float64 copy the statistics make


@dataclass(frozen=True)
class Normalization:
    """A dataset's own per-channel mean and std in [0, 1], and where they come from, in words."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str

    def record(self) -> dict[str, Any]:
        """As metrics.json and the export record it."""
        return {"mean": list(self.mean), "std": list(self.std), "source": self.source}


@dataclass(frozen=True)
class Split:
    """Images (N, C, H, W) uint8 and labels (N,) int64.

    The labels are always on `device`; the images are there too when `resident`, else on the
    host (pinned when `device` is CUDA). `batches` and `window` hand out images on `device` either way.
    """

    images: Tensor
    labels: Tensor
    device: torch.device
    resident: bool = True

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: Tensor) -> Tensor:
        """The images at `index` on the device: a gather there, or on the host into pinned memory
        followed by an asynchronous copy (the caching host allocator keeps the buffer until it is done)."""
        if self.resident:
            return self.images[index.to(self.images.device)]
        pinned = self.device.type == "cuda"
        buffer = host_buffer((len(index), *self.images.shape[1:]), pinned=pinned)
        torch.index_select(self.images, 0, index.cpu(), out=buffer)
        return buffer.to(self.device, non_blocking=pinned)

    def batches(self, order: Tensor, size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """(images, labels) on the device for `order` (indices on the device), `size` at a time.

        On the host path the order is copied to the host once, not once a batch; each batch is
        gathered when asked for, so that the host gathers the next batch while the device still
        runs the last one."""
        where = order if self.resident else order.cpu()
        for start in range(0, len(order), size):
            yield self.take(where[start : start + size]), self.labels[order[start : start + size]]

    def window(self, start: int, stop: int) -> Tensor:
        """Images start..stop on the device (a slice of pinned memory copies asynchronously)."""
        return self.images[start:stop].to(self.device, non_blocking=self.device.type == "cuda")


@dataclass(frozen=True)
class Data:
    name: str
    root: Path
    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...] = ()  # names, in label order
    notes: tuple[str, ...] = ()  # what loading changed or decided (resized, carved, on the host), in words
    normalization: Normalization | None = None  # the dataset's own; None only for a Data made by hand

    def counts(self) -> dict[str, Any]:
        """What metrics.json records of the data."""
        _, channels, height, width = self.train.images.shape
        return {
            "name": self.name,
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test),
            "class_names": list(self.classes),
            "input": [channels, height, width],
            "on_device": self.train.resident,
            "notes": list(self.notes),
        }


def fetch(config: DataConfig) -> Path:
    """The root of the dataset's files on disk, unpacked or downloaded first if they are not there.

    A search calls it once in the parent before any worker starts, so that workers never download
    into the same folder at once. An image folder is looked over (its layout checked), not decoded."""
    if config.dataset == SAMPLE:
        return sample_root()
    if config.dataset == IMAGE_FOLDER:
        if config.root is None:
            raise SpecError("data.root", "an image folder needs its directory: set data.root or pass --data-dir")
        discover(config.root)
        return config.root
    return find(config.dataset, config.root)


def find_full(data_dir: Path | None) -> Path:
    """The root holding the full Fashion-MNIST release, downloading it into the first place looked when missing."""
    return find(FULL, data_dir)


def load(
    config: DataConfig, device: torch.device | str, *, channels: int | None = None, size: int | None = None
) -> Data:
    """The dataset on `device`, split into train/val/test, at `channels` x `size` x `size` (None:
    as the dataset has it; an image folder needs both); cached, so repeated runs load it once."""
    if config.dataset == IMAGE_FOLDER and (channels is None or size is None):
        raise ValueError("an image folder is decoded at a given number of channels and size")
    return _load(config, fetch(config), torch.device(device), channels, size)


def load_for(spec: Spec, device: torch.device | str, data_dir: Path | None = None) -> Data:
    """The spec's dataset shaped for its input (channels converted, resized), its classes checked."""
    if spec.channels not in (1, 3):
        raise SpecError(
            "input.channels",
            f"{spec.data.dataset} images are read as 1 (grayscale) or 3 (RGB) channels, not {spec.channels}",
        )
    data = load(spec.data.with_overrides(root=data_dir), device, channels=spec.channels, size=spec.size)
    if len(data.classes) != spec.classes:
        raise SpecError(
            "classes",
            f"{data.name} has {len(data.classes)} classes ({names_text(data.classes)}), "
            f"but the spec has {spec.classes}",
        )
    return data


def names_text(names: Sequence[str], shown: int = 5) -> str:
    """The first few class names, for a message."""
    return ", ".join(map(str, names[:shown])) + (", ..." if len(names) > shown else "")


@functools.lru_cache(maxsize=4)
def _load(config: DataConfig, root: Path, device: torch.device, channels: int | None, size: int | None) -> Data:
    notes: list[str] = []
    if config.dataset == IMAGE_FOLDER:
        assert channels is not None and size is not None  # load() checked
        folder = read_folder(root, channels, size)
        splits, classes = dict(folder.splits), folder.classes
        notes += folder.notes
    else:
        raw = read(config.dataset, root)
        splits, classes = {"train": raw.train, "test": raw.test}, raw.classes
    total = len(splits["train"][1])  # both fractions are of the whole training folder or file
    if "test" not in splits:
        splits["train"], splits["test"] = _carve(*splits["train"], total, config.test_fraction, "data.test_fraction")
        notes.append(
            f"no test/ folder: {len(splits['test'][1]):,} images ({config.test_fraction:.0%}) of train/ carved "
            "as the test split, stratified by class (data.test_fraction)"
        )
    if "val" not in splits:
        splits["train"], splits["val"] = _carve(*splits["train"], total, config.val_fraction, "data.val_fraction")
        notes.append(
            f"{len(splits['val'][1]):,} images ({config.val_fraction:.0%}) of the training images carved as the "
            "validation split, stratified by class (data.val_fraction)"
        )
    notes += _shape_notes(config.dataset, splits["train"][0], channels, size)
    shaped = {name: (_shape(images, channels, size), labels) for name, (images, labels) in splits.items()}
    normalization = own_normalization(config.dataset, shaped["train"][0])
    if config.dataset not in (FULL, SAMPLE):  # Fashion-MNIST's were always the default: no news
        notes.append(
            f"normalize: unset in a spec means this dataset's own per-channel mean {_numbers(normalization.mean)} "
            f"and std {_numbers(normalization.std)} ({normalization.source})"
        )
    resident, why = residency(sum(images.nbytes for images, _ in shaped.values()), device, config.device_share)
    notes += [why] if why else []
    for note in notes:
        print(f"data: {note}", file=sys.stderr, flush=True)

    def place(images: Tensor, labels: Tensor) -> Split:
        labels = labels.to(device)
        if resident:
            return Split(images.to(device), labels, device)
        if device.type == "cuda":
            images = _pinned(images)
        return Split(images, labels, device, resident=False)

    return Data(
        name=config.dataset,
        root=root,
        train=place(*shaped["train"]),
        val=place(*shaped["val"]),
        test=place(*shaped["test"]),
        classes=tuple(classes),
        notes=tuple(notes),
        normalization=normalization,
    )


def own_normalization(name: str, train: Tensor) -> Normalization:
    """The dataset's own per-channel statistics at the channels of `train` (the shaped training split):
    the release's published constants where its channels are these (a gray release's repeated for
    RGB), else measured on `train`, rounded to 4 decimals as the published ones are."""
    channels = train.shape[1]
    release = RELEASES.get(name)
    if release is not None and len(release.mean) in (1, channels):
        repeat = channels // len(release.mean)
        how = "published" + (", repeated on each channel" if repeat > 1 else "")
        return Normalization(release.mean * repeat, release.std * repeat, f"{release.label}'s {how}")
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for chunk in train.split(STATS_CHUNK):
        pixels = chunk.to(torch.float64).div_(255)
        total += pixels.sum((0, 2, 3))
        squares += pixels.square_().sum((0, 2, 3))
    count = train.shape[0] * train.shape[2] * train.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt().clamp_min(1e-4)  # a blank image set: no division by 0
    measured = f"measured on the {train.shape[0]:,} training images"
    return Normalization(tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist()), measured)


def _numbers(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"


def residency(nbytes: int, device: torch.device, share: float) -> tuple[bool, str | None]:
    """Whether `nbytes` of data live on `device` (at most `share` of its free memory), and if not, why."""
    free = device_free(device)
    if nbytes <= share * free:
        return True, None
    return False, (
        f"kept on the host{' (pinned)' * (device.type == 'cuda')} and copied batch by batch: its "
        f"{size_text(nbytes)} is more than data.device_share ({share:g}) of the {size_text(free)} free on {device}"
    )


def host_buffer(shape: tuple[int, ...], *, pinned: bool) -> Tensor:
    """A uint8 batch buffer on the host; pinned ones come from the caching host allocator, which
    keeps a freed buffer until the copy reading it has finished."""
    return torch.empty(shape, dtype=torch.uint8, pin_memory=pinned)


def _carve(images: Tensor, labels: Tensor, total: int, fraction: float, key: str) -> tuple[tuple[Tensor, Tensor], ...]:
    """(rest, carved): `fraction` of `total` images drawn with the fixed SPLIT_SEED, stratified by class
    (each class gives its share, the remainders going to the classes with the largest), each part in
    file order."""
    n = max(1, round(total * fraction))
    if n >= len(labels):
        raise SpecError(key, f"leaves no training images out of {len(labels)}")
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    classes, sizes = labels.unique(return_counts=True)
    quotas = sizes.double() * n / len(labels)
    taken = quotas.floor().long()
    by_remainder = sorted(range(len(classes)), key=lambda i: (-(quotas[i] - taken[i]).item(), i))
    for i in by_remainder[: n - int(taken.sum())]:
        taken[i] += 1
    shuffled = labels[order]
    carved = torch.cat([order[shuffled == c][: int(k)] for c, k in zip(classes, taken, strict=True)])
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[carved] = False
    rest = keep.nonzero().flatten()
    carved = carved.sort().values
    return (images[rest], labels[rest]), (images[carved], labels[carved])


def _shape(images: Tensor, channels: int | None, size: int | None) -> Tensor:
    """`images` converted to `channels` and resized to `size` x `size` (None: unchanged), in chunks
    on the host, so the float copy resizing needs never holds the whole dataset."""
    _, have, height, width = images.shape
    channels = channels or have
    size_hw = (size, size) if size is not None else (height, width)
    if (channels, *size_hw) == (have, height, width):
        return images.contiguous()
    shape = f"{channels}x{size_hw[0]}x{size_hw[1]}"
    require_host(len(images) * channels * size_hw[0] * size_hw[1], f"the dataset at {shape}")
    out = torch.empty((len(images), channels, *size_hw), dtype=torch.uint8)
    for start in range(0, len(images), RESIZE_CHUNK):
        chunk = images[start : start + RESIZE_CHUNK]
        if have == 3 and channels == 1:
            chunk = TF.rgb_to_grayscale(chunk)
        if chunk.shape[2:] != size_hw:
            chunk = TF.resize(chunk, list(size_hw), antialias=True)
        out[start : start + RESIZE_CHUNK] = chunk  # a 1-channel chunk broadcasts to 3 channels
    return out


def _shape_notes(name: str, images: Tensor, channels: int | None, size: int | None) -> list[str]:
    """What `_shape` will do, in words (an image folder's images were shaped as they were decoded)."""
    if name == IMAGE_FOLDER:
        return []
    _, have, height, width = images.shape
    notes = []
    if channels is not None and channels != have:
        how = "converted to grayscale (luminance)" if channels == 1 else "gray repeated to 3 channels (RGB)"
        notes.append(f"{RELEASES[name].label}'s {have}-channel images {how} for input.channels {channels}")
    if size is not None and (size, size) != (height, width):
        notes.append(f"resized once from {height}x{width} to {size}x{size}, antialiased bilinear (input.size {size})")
    return notes


def _pinned(images: Tensor) -> Tensor:
    """Page-locked host memory, so copies to the GPU can run asynchronously; pageable if the OS refuses."""
    try:
        return images.pin_memory()
    except RuntimeError:
        return images


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
