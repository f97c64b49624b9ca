"""An image folder decoded once into uint8 tensors at the spec's size, and cached on disk.

Layouts (torchvision's `ImageFolder` conventions, and its file discovery):
  ROOT/CLASS/IMAGE                       one folder per class: train, val and test are all carved
  ROOT/train/CLASS/IMAGE [ROOT/val/...] [ROOT/test/...]  split folders, each with a folder per class
The classes are train's folder names, sorted. A val/ or test/ folder may lack some classes, but
may not add any.

Each image is converted exactly as `predict` converts an image file (`sandbox.train.images`), so
a network sees at training what it will be shown: read by PIL (ImageFolder's own loader; every
extension ImageFolder lists; torchvision 0.29 deprecates its `torchvision.io` decoders), turned by
its EXIF orientation, 16-bit scaled by its range, transparency flattened onto white, converted to
the spec's channels (luminance for gray), padded to a square with its border colour (neither
stretched nor cropped) and resized to size x size, antialiased. A file that does not read is
skipped and counted; a class left with no image is an error naming its folder.

Files are found as `ImageFolder` finds them, in the same order, but links are not trusted: a link
to a directory is not followed (`a/up -> ..` would repeat the whole tree under class a's label, into
every split), each real file is counted once however many links or paths lead to it, and dangling
links and what is not a regular file (a FIFO named x.png would block the decoder) are skipped. Each
is counted in a note.

The cache file is named by a hash of the root, every image's path, size and mtime, and the
target channels and size: an added, removed or touched image, or another input size, decodes again.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, has_file_allowed_extension

from sandbox.errors import SandboxError, describe
from sandbox.train.datasets import cache_dir
from sandbox.train.images import load_image
from sandbox.train.memory import require_host, size_text

SPLITS = ("train", "val", "test")
CACHE_VERSION = 1  # bump when decoding changes, so old caches are not read


@dataclass(frozen=True)
class Folder:
    """The split folders that exist, decoded: uint8 (N, C, size, size) images and int64 labels."""

    splits: dict[str, tuple[Tensor, Tensor]]
    classes: tuple[str, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    """Each split folder's (path, label) list, found as `ImageFolder` finds them, and the classes."""

    root: Path
    top: Path  # the folder holding train's class folders
    splits: dict[str, list[tuple[str, int]]]
    classes: tuple[str, ...]
    notes: tuple[str, ...] = ()  # what was passed over while finding the files


class _Finder:
    """Image files under class folders, each real file once, without following directory links;
    what is passed over is kept by kind for the notes."""

    KINDS = {
        "links": "directory links not followed",
        "repeats": "repeated files counted once (links or paths to a file already found)",
        "dangling": "dangling links skipped",
        "special": "non-regular files skipped (FIFOs, devices, sockets)",
    }

    def __init__(self) -> None:
        self.seen: set[tuple[int, int]] = set()  # (device, inode): across every split and class
        self.passed: dict[str, list[str]] = {kind: [] for kind in self.KINDS}

    def files(self, folder: Path, class_to_index: dict[str, int]) -> list[tuple[str, int]]:
        """(path, label) as `make_dataset` lists them (classes sorted, then `sorted(os.walk(...))`)."""
        found = []
        for name in sorted(class_to_index):
            top = folder / name
            if top.is_symlink():
                self.passed["links"].append(str(top))
                continue
            if not top.is_dir():
                continue
            for directory, subdirectories, names in sorted(os.walk(top)):  # followlinks=False
                self.passed["links"] += [
                    os.path.join(directory, d)
                    for d in sorted(subdirectories)
                    if os.path.islink(os.path.join(directory, d))
                ]
                for file in sorted(names):
                    path = os.path.join(directory, file)
                    if has_file_allowed_extension(path, IMG_EXTENSIONS) and self._once(path):
                        found.append((path, class_to_index[name]))
        return found

    def _once(self, path: str) -> bool:
        try:
            status = os.stat(path)  # through a file link: the file it names
        except OSError:
            self.passed["dangling"].append(path)
            return False
        if not stat.S_ISREG(status.st_mode):
            self.passed["special"].append(path)
            return False
        if (status.st_dev, status.st_ino) in self.seen:
            self.passed["repeats"].append(path)
            return False
        self.seen.add((status.st_dev, status.st_ino))
        return True

    def notes(self) -> tuple[str, ...]:
        return tuple(
            f"{self.KINDS[kind]}: {len(paths):,} (first: {paths[0]})" for kind, paths in self.passed.items() if paths
        )


def discover(root: Path) -> Layout:
    """The folders and image files under `root`, without decoding any.

    A root with a train/ folder has split folders; otherwise its folders are the classes (one split,
    "train"). Every problem is one line naming the folder."""
    if not root.is_dir():
        raise SandboxError(f"image folder {root} does not exist (data.root or --data-dir)")
    split_root = (root / "train").is_dir()
    top = root / "train" if split_root else root
    try:
        classes, class_to_index = find_classes(top)
    except FileNotFoundError:
        raise SandboxError(
            f"image folder {top} has no class folders: expected ROOT/CLASS/IMAGE, or ROOT/train/CLASS/IMAGE "
            "with optional val/ and test/ beside train/"
        ) from None
    splits = {}
    finder = _Finder()
    for split in SPLITS if split_root else ("train",):
        folder = root / split if split_root else root
        if not folder.is_dir():
            continue
        extra = sorted(set(find_classes(folder)[0]) - set(classes)) if split != "train" else []
        if extra:
            raise SandboxError(f"{folder} has class folders that train/ lacks: {', '.join(extra)}")
        splits[split] = finder.files(folder, class_to_index)
    found = {label for _, label in splits["train"]}
    empty = [top / name for index, name in enumerate(classes) if index not in found]
    if empty:
        passed = "; ".join(finder.notes())
        raise SandboxError(
            f"{_paths(empty)}: no image files (expected {', '.join(IMG_EXTENSIONS)})"
            + ("" if len(found) else f"; is {top} the image folder?")
            + (f"; {passed}" if passed else "")
        )
    return Layout(root, top, splits, tuple(classes), finder.notes())


def read_folder(root: Path, channels: int, size: int) -> Folder:
    """The folder at `channels` x `size` x `size`, from the cache when nothing in it changed."""
    layout = discover(root)
    path = cache_dir() / "image-folder" / f"{cache_key(layout, channels, size)}.pt"
    if path.is_file():
        try:
            cached = torch.load(path, weights_only=True, mmap=True)
            splits = {k: (v[0], v[1]) for k, v in cached["splits"].items()}
            read = (*cached["notes"], *layout.notes, f"read from the cache {path}")
            return Folder(splits, tuple(cached["classes"]), read)
        except Exception:  # noqa: BLE001 - a truncated or foreign file: decode again and overwrite it
            pass
    began = time.perf_counter()
    folder = _decode_all(layout, channels, size)
    notes = [*folder.notes, *layout.notes, f"decoded in {time.perf_counter() - began:.1f} s"]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save({"splits": folder.splits, "classes": list(folder.classes), "notes": folder.notes}, temporary)
        os.replace(temporary, path)  # atomic: a concurrent reader never sees half a file
        notes.append(f"cached in {path}")
    except OSError as err:
        notes.append(f"not cached ({err.strerror or err}): set SANDBOX_CACHE to a writable directory")
    return Folder(folder.splits, folder.classes, tuple(notes))


def cache_key(layout: Layout, channels: int, size: int) -> str:
    digest = hashlib.sha256(f"{CACHE_VERSION}\0{layout.root.resolve()}\0{channels}\0{size}".encode())
    digest.update("\0".join(layout.classes).encode())
    for split, items in layout.splits.items():
        for file, label in items:
            stat = os.stat(file)
            digest.update(f"\0{split}\0{file}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def _decode_all(layout: Layout, channels: int, size: int) -> Folder:
    root, splits, classes = layout.root, layout.splits, layout.classes
    files = [file for items in splits.values() for file, _ in items]
    require_host(len(files) * channels * size * size, f"the image folder {root} at {channels}x{size}x{size}")
    images = torch.empty((len(files), channels, size, size), dtype=torch.uint8)
    native: Counter[int] = Counter()  # images by the channels they had (alpha dropped)
    resized = padded = 0
    skipped: list[str] = []
    readable = torch.zeros(len(files), dtype=torch.bool)
    with ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads())) as pool:  # the decoders release the GIL
        for index, outcome in enumerate(pool.map(lambda file: _decode(file, channels, size), files)):
            if isinstance(outcome, str):
                skipped.append(f"{files[index]}: {outcome}")
                continue
            image, had_channels, was_resized, was_padded = outcome
            images[index], readable[index] = image, True
            native[had_channels] += 1
            resized += was_resized
            padded += was_padded
    out: dict[str, tuple[Tensor, Tensor]] = {}
    start = 0
    for split, items in splits.items():
        keep = readable[start : start + len(items)]
        labels = torch.tensor([label for _, label in items], dtype=torch.int64)
        out[split] = (images[start : start + len(items)][keep].clone(), labels[keep])
        start += len(items)
    counts = torch.bincount(out["train"][1], minlength=len(classes))
    empty = [layout.top / name for index, name in enumerate(classes) if counts[index] == 0]
    if empty:
        raise SandboxError(f"{_paths(empty)}: no readable image ({len(skipped)} unreadable: {skipped[0]})")
    total = sum(len(items) for items in splits.values())
    kept = total - len(skipped)
    notes = [f"image folder {root}: {kept:,} images in {len(classes)} classes ({size_text(images.nbytes)})"]
    if skipped:
        notes.append(f"skipped {len(skipped)} unreadable image{'s' * (len(skipped) > 1)} (first: {skipped[0]})")
    other = sum(n for c, n in native.items() if c != channels)
    if other:
        kind = "RGB images converted to grayscale" if channels == 1 else "grayscale images repeated to RGB"
        notes.append(f"{other:,} {kind} (input.channels is {channels})")
    if padded:
        notes.append(f"{padded:,} non-square images padded to a square with their border colour, as predict does")
    if resized:
        notes.append(f"{resized:,} images resized to {size}x{size} (input.size), antialiased")
    return Folder(out, tuple(classes), tuple(notes))


def _decode(file: str, channels: int, size: int) -> tuple[Tensor, int, bool, bool] | str:
    """One image at channels x size x size as `predict` converts it, the channels it had (alpha not
    counted), whether it was resized and whether padded; or why it cannot be read."""
    try:
        image, _ = load_image(Path(file), channels, size, invert="never")  # first: it refuses FIFOs and bombs
        with Image.open(file) as header:  # lazy: only the header is read
            had = 3 if len([b for b in header.getbands() if b not in ("A", "a")]) >= 3 or header.mode == "P" else 1
            width, height = header.size
    except (SandboxError, OSError, ValueError, Image.DecompressionBombError) as err:
        return str(err).removeprefix(f"{file}: ") if isinstance(err, SandboxError) else describe(err)
    return image.mul_(255).round_().to(torch.uint8), had, (width, height) != (size, size), width != height


def _paths(paths: Sequence[Path]) -> str:
    shown = ", ".join(str(p) for p in paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
