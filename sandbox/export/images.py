"""Image files as a network's input for `predict`, converted as `python -m sandbox predict --help` says."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor

from sandbox.errors import SandboxError


def load_image(path: Path, channels: int, size: int, invert: str = "auto") -> tuple[Tensor, bool]:
    """An image file as a (channels, size, size) float tensor in [0, 1], converted as the module
    docstring says, and whether it was inverted. A file PIL cannot read is a SandboxError naming it."""
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGBA")
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError) as err:
        strerror = err.strerror if isinstance(err, OSError) else None  # the other two have no strerror
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


def _border(image: Tensor) -> Tensor:
    """The outermost ring of pixels, (channels, n): the background, for a centred subject."""
    return torch.cat([image[:, 0], image[:, -1], image[:, :, 0], image[:, :, -1]], dim=1)
