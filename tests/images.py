"""Image files made up for tests: `png_header` declares any size and costs a few bytes;
`write_image_folder` writes a small class-per-folder dataset."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import torch
from PIL import Image


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height 8-bit gray pixels and holds none: only its header can be read."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def write_image_folder(
    root: Path,
    counts: dict[str, int],
    *,
    size: tuple[int, int] = (20, 16),
    mode: str = "RGB",
    suffix: str = ".png",
    seed: int = 0,
) -> Path:
    """root/CLASS/NNN.png for each class in `counts`, width x height `size`, each class a brightness
    level of its own (so the class is learnable); returns root."""
    generator = torch.Generator().manual_seed(seed)
    for index, (name, count) in enumerate(counts.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            level = 30 + 200 * index // max(1, len(counts) - 1)
            pixels = torch.randint(0, 20, (size[1], size[0], 3), generator=generator) + level
            image = Image.fromarray(pixels.clamp(0, 255).to(torch.uint8).numpy()).convert(mode)
            image.save(folder / f"{i:03d}{suffix}")
    return root
