"""Image files as a network's input for `predict`, converted as `python -m sandbox predict --help` says."""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from typing import cast

import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor

from sandbox.errors import SandboxError

# The most converting one image may take. The padding to a square is what grows: a 177-byte 100000x1 PNG
# becomes a 100000x100000 square, 10 GB. Pillow's own pixel limit (Image.MAX_IMAGE_PIXELS, 89 million)
# is applied as an error too, checked against each image's header rather than by turning Pillow's
# warning into an error: `warnings.catch_warnings` is process-wide, so decoder threads racing through it
# let some images over the limit pass and refused others at random. The warning itself is silenced
# once, here, since the check below replaces it.
MAX_IMAGE_BYTES = 2 * 2**30
DEEP_MODES = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535, "F": 1}  # mode → white
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def load_image(path: Path, channels: int, size: int, invert: str = "auto") -> tuple[Tensor, bool]:
    """An image file as a (channels, size, size) float tensor in [0, 1], converted as the module
    docstring says, and whether it was inverted. A file PIL cannot read, one that is not a regular
    file (a FIFO would block the read), one over Pillow's pixel limit, or one too large to convert
    within MAX_IMAGE_BYTES (told by its header, before it is decoded), is a SandboxError naming it."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise SandboxError(f"{path}: not a regular file (a FIFO, device or directory), not read")
        with Image.open(path) as opened:  # lazy: only the header is read yet
            _check_pixels(path, opened.size)
            _check_memory(path, opened.size, channels)
            image = _eight_bit(path, ImageOps.exif_transpose(opened)).convert("RGBA")
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError) as err:
        strerror = err.strerror if isinstance(err, OSError) else None  # the others have no strerror
        reason = "PIL cannot read it as an image" if isinstance(err, UnidentifiedImageError) else strerror or err
        raise SandboxError(f"{path}: not a readable image: {reason}") from err
    flat = Image.new("RGBA", image.size, "white")
    flat.alpha_composite(image)
    image = flat.convert("L" if channels == 1 else "RGB")
    background = _border(pil_to_tensor(image)).median(dim=1).values.tolist()
    square = ImageOps.pad(image, (max(image.size),) * 2, color=tuple(background) if channels > 1 else background[0])
    tensor = pil_to_tensor(square.resize((size, size), Image.Resampling.BILINEAR)).float() / 255
    inverted = channels == 1 and (invert == "always" or (invert == "auto" and _border(tensor).mean().item() > 0.5))
    return (1 - tensor if inverted else tensor), inverted


def _check_pixels(path: Path, size: tuple[int, int]) -> None:
    """Pillow's decompression-bomb limit, as an error for this image alone (see MAX_IMAGE_BYTES)."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and size[0] * size[1] > limit:
        raise SandboxError(
            f"{path}: {size[0]}x{size[1]} pixels, over Pillow's decompression-bomb limit of {limit:,} "
            "(PIL.Image.MAX_IMAGE_PIXELS); shrink it first"
        )


def _check_memory(path: Path, size: tuple[int, int], channels: int) -> None:
    """Refuse an image whose conversion would take more than MAX_IMAGE_BYTES: at most four full-size
    copies, 4 bytes a pixel, and the padded square, 1 byte a pixel in gray and 4 in colour (an upper
    estimate: a 6000x4000 photo takes 274 MB of the 420 MB this counts in gray, 425 of 528 in colour)."""
    width, height = size
    side = max(size)
    needed = 16 * width * height + (1 if channels == 1 else 4) * side * side
    if needed > MAX_IMAGE_BYTES:
        raise SandboxError(
            f"{path}: {width}x{height} pixels, padded to a {side}x{side} square, would take about "
            f"{needed / 2**30:,.1f} GiB to convert, over the {MAX_IMAGE_BYTES / 2**30:g} GiB predict allows; "
            "crop or shrink it first"
        )


def _eight_bit(path: Path, image: Image.Image) -> Image.Image:
    """A 16-bit or float gray image as 8-bit gray, scaled by its range (DEEP_MODES) where Pillow's own
    conversion clips at 255; one whose pixels lie outside that range is refused, not guessed at."""
    white = DEEP_MODES.get(image.mode)
    if white is None:
        return image
    low, high = cast("tuple[float, float]", image.getextrema())  # one band: (min, max)
    if not (low >= 0 and high <= white):  # NaN fails too
        raise SandboxError(
            f"{path}: {image.mode} pixels range over [{low:g}, {high:g}]; predict reads this mode as 0 to {white:g}"
        )
    return image.convert("F").point(lambda v: v * (255 / white)).convert("L")


def _border(image: Tensor) -> Tensor:
    """The outermost ring of pixels, (channels, n): the background, for a centred subject."""
    return torch.cat([image[:, 0], image[:, -1], image[:, :, 0], image[:, :, -1]], dim=1)
