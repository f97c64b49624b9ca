"""`sandbox predict`: image files of any size and colour, converted the documented way, top-3 classes."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import FashionMNIST

from sandbox.errors import SandboxError
from sandbox.export import export
from sandbox.train.images import MAX_IMAGE_BYTES, load_image
from tests.deadline import deadline
from tests.images import png_header
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


def test_images_too_big_to_convert_are_refused_from_their_header_and_the_rest_classified(
    small_spec: Callable[[], dict[str, Any]], tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    make_run_dir(tmp_path / "run", small_spec())
    strip, bomb, warned = (tmp_path / name for name in ("strip.png", "bomb.png", "warned.png"))
    strip.write_bytes(png_header(100_000, 1))  # padded to a square: 10 GB
    bomb.write_bytes(png_header(20_000, 20_000))  # over Pillow's limit: was AttributeError 'strerror'
    warned.write_bytes(png_header(10_000, 10_000))  # over Pillow's warning limit, under its error
    good = [picture(tmp_path / f"{n}.png", (28, 28), "black", "white") for n in ("a", "b")]

    with deadline(20):
        result = cli("predict", tmp_path / "run", good[0], strip, bomb, warned, good[1])

    assert result.code == 1
    assert [Path(line.split(": ")[0]) for line in result.out.splitlines()] == good
    errors = result.err.splitlines()
    assert len(errors) == 3 and result.err.count("\n") == 3, result.err
    assert errors[0].startswith(f"error: {strip}: 100000x1 pixels, padded to a 100000x100000 square, would take")
    assert f"over the {MAX_IMAGE_BYTES / 2**30:g} GiB predict allows" in errors[0]
    assert errors[1].startswith(f"error: {bomb}: not a readable image: Image size (400000000 pixels) exceeds limit")
    assert errors[2] == (  # between Pillow's warning and error limits: refused by its own check, in every thread
        f"error: {warned}: 10000x10000 pixels, over Pillow's decompression-bomb limit of {Image.MAX_IMAGE_PIXELS:,} "
        "(PIL.Image.MAX_IMAGE_PIXELS); shrink it first"
    )


def test_a_fifo_or_a_directory_named_as_an_image_is_one_line_not_a_hang(
    small_spec: Callable[[], dict[str, Any]], tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    make_run_dir(tmp_path / "run", small_spec())
    pipe, folder = tmp_path / "pipe.png", tmp_path / "folder.png"
    os.mkfifo(pipe)
    folder.mkdir()
    good = picture(tmp_path / "good.png", (28, 28), "black", "white")
    with deadline(20):  # PIL opening a FIFO waits for a writer forever
        result = cli("predict", tmp_path / "run", pipe, folder, good)
    assert result.code == 1 and [Path(line.split(": ")[0]) for line in result.out.splitlines()] == [good]
    assert result.err.splitlines() == [
        f"error: {path}: not a regular file (a FIFO, device or directory), not read" for path in (pipe, folder)
    ]


def test_16_bit_and_float_images_are_scaled_not_clipped(tmp_path: Path) -> None:
    levels = np.full((40, 40), 0.15, dtype=np.float32)
    levels[10:30, 10:30] = 0.61
    eight = tmp_path / "eight.png"
    Image.fromarray(np.round(levels * 255).astype(np.uint8)).save(eight)
    sixteen = tmp_path / "sixteen.png"
    Image.fromarray(np.round(levels * 65535).astype(np.uint16)).save(sixteen)
    floating = tmp_path / "float.tif"
    Image.fromarray(levels).save(floating)
    assert [Image.open(path).mode for path in (eight, sixteen, floating)] == ["L", "I;16", "F"]

    expected, _ = load_image(eight, 1, 28, invert="never")
    assert expected.max() > 0.6  # the subject survives the resize, so clipping would show
    for path in (sixteen, floating):
        for channels in (1, 3):
            tensor, _ = load_image(path, channels, 28, invert="never")
            assert torch.allclose(tensor, expected.expand(channels, 28, 28), atol=1.5 / 255), (path, channels)

    Image.fromarray(levels * 255).save(tmp_path / "float255.tif")  # a float image on a 0-255 scale: no guessing
    with pytest.raises(SandboxError, match=r"float255.tif: F pixels range over \[38.25, 155.55\]; .* 0 to 1$"):
        load_image(tmp_path / "float255.tif", 1, 28)


def test_exported_predict_checks_its_inputs_dtype_range_and_shape(
    small_spec: Callable[[], dict[str, Any]], tmp_path: Path
) -> None:
    """A uint8 tensor was answered ('Pullover', 1.0) for a boot: now each wrong input is a ValueError saying so."""
    model = make_run_dir(tmp_path / "run", small_spec())
    py, _ = export(tmp_path / "run", tmp_path / "net.py")
    spec = importlib.util.spec_from_file_location("exported_net", py)
    assert spec is not None and spec.loader is not None
    exported = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exported)
    images = torch.rand(2, 1, 28, 28)

    top = exported.predict(images, exported.load(), top=2)
    with torch.inference_mode():
        values, indices = model(images).softmax(dim=1).topk(2)
    assert [[name for name, _ in row] for row in top] == [[FashionMNIST.classes[i] for i in row] for row in indices]
    assert [p for row in top for _, p in row] == pytest.approx(values.flatten().tolist(), abs=1e-5)
    assert len(exported.predict(images[0])) == 1  # one image without its batch dimension

    wrong = {
        r"not torch.uint8: pass images.float\(\) / 255": (images * 255).to(torch.uint8),
        r"not \[[\d.]+, 2[\d.]+\]: divide 8-bit values by 255": images * 255,
        r"not \[-0.8\d+, .*leave normalizing to the network": (images - 0.286) / 0.353,
        r"not \[nan, nan\]": torch.full_like(images, float("nan")),
        r"takes images \(N, 1, 28, 28\), not \(2, 1, 32, 32\)": torch.rand(2, 1, 32, 32),
        r"takes images \(N, 1, 28, 28\), not \(2, 3, 28, 28\)": torch.rand(2, 3, 28, 28),
    }
    for message, tensor in wrong.items():
        with pytest.raises(ValueError, match=message):
            exported.predict(tensor, exported.load())
