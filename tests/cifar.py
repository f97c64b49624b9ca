"""Tiny synthetic CIFAR-10/100 files in torchvision's python-pickle layout, written by the tests."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch


def write_cifar(root: Path, train: int, test: int, classes: int = 10, seed: int = 0) -> Path:
    """root/cifar-10-batches-py (or cifar-100-python) with the batch files torchvision reads.

    Images are (N, 3072) uint8 rows, channel-planar as in the release, with a class-dependent
    bright red band so a network can learn them; labels are `i % classes`."""
    generator = torch.Generator().manual_seed(seed)
    ten = classes == 10
    folder = root / ("cifar-10-batches-py" if ten else "cifar-100-python")
    folder.mkdir(parents=True, exist_ok=True)
    names = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"] if ten else ["train"]
    parts = [train // len(names) + (i < train % len(names)) for i in range(len(names))]
    for name, count in [*zip(names, parts, strict=True), ("test_batch" if ten else "test", test)]:
        labels = [i % classes for i in range(count)]
        images = torch.randint(0, 60, (count, 3, 32, 32), generator=generator, dtype=torch.uint8)
        for i, label in enumerate(labels):
            images[i, 0, (3 * label) % 30 : (3 * label) % 30 + 3, :] += 180
        entry = {"data": images.reshape(count, 3072).numpy(), ("labels" if ten else "fine_labels"): labels}
        (folder / name).write_bytes(pickle.dumps(entry))
    label_names = [f"thing{i}" for i in range(classes)]
    meta = {"label_names": label_names} if ten else {"fine_label_names": label_names, "coarse_label_names": []}
    (folder / ("batches.meta" if ten else "meta")).write_bytes(pickle.dumps(meta))
    return root
