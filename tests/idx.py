"""Tiny synthetic Fashion-MNIST files in torchvision's raw IDX layout, written by the tests."""

from __future__ import annotations

import struct
from pathlib import Path

import torch


def write_idx(path: Path, data: torch.Tensor) -> None:
    """IDX: magic (0x0000, type 0x08 = ubyte, number of dims), sizes big-endian, then bytes."""
    header = struct.pack(">HBB", 0, 0x08, data.dim()) + struct.pack(f">{data.dim()}I", *data.shape)
    path.write_bytes(header + data.to(torch.uint8).contiguous().numpy().tobytes())


def write_fashion_mnist(root: Path, train: int, test: int, seed: int = 0, folder: str = "FashionMNIST") -> Path:
    """Images whose class is learnable (a class-dependent bright band), so accuracy can rise.
    `folder="MNIST"` writes them where torchvision's MNIST looks."""
    generator = torch.Generator().manual_seed(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("t10k", test)):
        labels = torch.arange(count) % 10
        images = torch.randint(0, 60, (count, 28, 28), generator=generator)
        for label in range(10):
            images[labels == label, 2 * label : 2 * label + 4, :] += 150
        write_idx(raw / f"{split}-images-idx3-ubyte", images.clamp(0, 255))
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
    return root
