"""`sandbox predict`: image files of any size and colour, converted the documented way, top-3 classes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch
from PIL import Image
from torchvision.datasets import FashionMNIST

from sandbox.export.images import load_image
from tests.run_dirs import make_run_dir

if TYPE_CHECKING:
    from tests.conftest import CliResult

LINE = re.compile(r"^(?P<file>\S+): (?P<top>.+?)(?P<inverted>  \(inverted\))?$")


def picture(path: Path, size: tuple[int, int], background: Any, subject: Any, mode: str = "RGB") -> Path:
    """A centred rectangle (the subject) on a plain background."""
    image = Image.new(mode, size, background)
    width, height = size
    image.paste(subject, (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    image.save(path)
    return path


def test_prints_top_three_per_image_and_names_unreadable_files(
    small_spec: Callable[[], dict[str, Any]], tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    model = make_run_dir(tmp_path / "run", small_spec())
    images = [
        picture(tmp_path / "photo.png", (300, 200), "white", (90, 40, 40)),  # a dark shirt on white, landscape
        picture(tmp_path / "scan.jpg", (20, 20), 0, 230, mode="L"),  # light on black, small
        picture(tmp_path / "cutout.png", (64, 80), (0, 0, 0, 0), (200, 200, 200, 255), mode="RGBA"),
    ]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG but not really")

    result = cli("predict", tmp_path / "run", images[0], broken, images[1], tmp_path / "missing.jpg", images[2])

    assert result.code == 1  # some images failed, the others were still classified
    errors = result.err.splitlines()
    assert len(errors) == 2 and f"error: {broken}: not a readable image" in errors[0]
    assert f"error: {tmp_path / 'missing.jpg'}: not a readable image: No such file or directory" in errors[1]
    lines = [LINE.match(line) for line in result.out.splitlines()]
    assert [Path(m["file"]) for m in lines if m] == images
    assert [bool(m["inverted"]) for m in lines if m] == [True, False, True]
    for match, path in zip(lines, images, strict=True):
        top = [entry.rsplit(" ", 1) for entry in match["top"].split(", ")]
        tensor, _ = load_image(path, 1, 28)
        with torch.inference_mode():
            probabilities = model(tensor.unsqueeze(0)).softmax(dim=1)[0]
        values, indices = probabilities.topk(3)
        assert [name for name, _ in top] == [FashionMNIST.classes[i] for i in indices]
        assert [float(p) for _, p in top] == pytest.approx(values.tolist(), abs=1e-3)


def test_images_become_the_networks_input_the_documented_way(tmp_path: Path) -> None:
    dark_on_light = picture(tmp_path / "a.png", (40, 40), "white", "black")
    light_on_dark = picture(tmp_path / "b.png", (40, 40), "black", "white")
    tall = picture(tmp_path / "c.png", (20, 60), "black", "white")
    red = picture(tmp_path / "d.png", (50, 30), "red", "red")

    inverted, was_inverted = load_image(dark_on_light, 1, 28)
    kept, was_kept = load_image(light_on_dark, 1, 28)
    assert was_inverted and not was_kept and inverted.shape == kept.shape == (1, 28, 28)
    assert torch.allclose(inverted, kept, atol=0.02)  # both now light clothes on black, like Fashion-MNIST
    assert not load_image(dark_on_light, 1, 28, invert="never")[1] and load_image(light_on_dark, 1, 28, "always")[1]

    square, _ = load_image(tall, 1, 28)  # padded with its background to a square, not stretched
    assert square[0, :, :6].max() == 0 and square[0, 14, 14] > 0.9 and square[0, 14, :].gt(0.5).sum() <= 6

    colour, was_inverted = load_image(red, 3, 32)  # three-channel networks get RGB, never inverted
    assert colour.shape == (3, 32, 32) and not was_inverted
    assert torch.allclose(colour[0], torch.ones(32, 32)) and colour[1:].max() == 0


def test_predict_needs_trained_weights(
    small_spec: Callable[[], dict[str, Any]], tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    (tmp_path / "spec.yaml").write_text(json.dumps(small_spec()))
    picture(tmp_path / "a.png", (28, 28), "black", "white")

    result = cli("predict", tmp_path / "spec.yaml", tmp_path / "a.png")

    assert result.code == 2 and "no trained weights to predict with: pass --weights FILE" in result.err
