"""Data shaped once, at load time, for the spec's input: resized (antialiased), channels converted."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

import sandbox.train.data
from sandbox.errors import SpecError
from sandbox.spec.load import load_spec
from sandbox.train.data import load_for
from sandbox.train.loop import train_run
from tests.cifar import write_cifar
from tests.idx import write_fashion_mnist, write_idx
from tests.tiny_spec import tiny_spec


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SANDBOX_DATA", raising=False)


def fashion(root: Path, **input_: int) -> dict:
    return tiny_spec({"dataset": "fashion-mnist", "root": str(root), "val_fraction": 0.2}, **input_)


def test_gray_28_becomes_rgb_56_once_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_fashion_mnist(tmp_path / "fm", train=50, test=20)
    data = load_for(load_spec(fashion(root, channels=3, size=56)), "cpu")
    assert data.train.images.shape == (40, 3, 56, 56) and data.train.images.dtype == torch.uint8
    assert torch.equal(data.train.images[:, 0], data.train.images[:, 2])  # gray repeated
    assert any("resized once from 28x28 to 56x56" in note for note in data.notes)
    assert any("repeated to 3 channels" in note for note in data.notes)
    assert "data: resized once from 28x28 to 56x56" in capsys.readouterr().err  # the run's output says so
    assert data.counts()["input"] == [3, 56, 56] and data.counts()["notes"] == list(data.notes)


def test_downsizing_is_antialiased(tmp_path: Path) -> None:
    """Stripes one pixel on, three off, shrunk 4x: antialiasing averages them (64), plain bilinear
    sampling between two dark pixels would see none of them (0)."""
    raw = tmp_path / "fm" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    stripes = torch.zeros(28, 28, dtype=torch.uint8)
    stripes[:, ::4] = 255
    for split, n in (("train", 20), ("t10k", 4)):
        write_idx(raw / f"{split}-images-idx3-ubyte", stripes.expand(n, 28, 28))
        write_idx(raw / f"{split}-labels-idx1-ubyte", torch.arange(n) % 10)
    data = load_for(load_spec(fashion(tmp_path / "fm", size=7)), "cpu")
    assert data.test.images.shape == (4, 1, 7, 7)
    assert 50 <= float(data.test.images.float().mean()) <= 80


def test_rgb_becomes_gray_by_luminance(tmp_path: Path) -> None:
    root = write_cifar(tmp_path / "c", train=30, test=10)
    data = load_for(load_spec(tiny_spec({"dataset": "cifar10", "root": str(root)}, channels=1, size=32)), "cpu")
    original = sandbox.train.data.read("cifar10", root).test[0]
    assert data.test.images.shape == (10, 1, 32, 32)
    assert torch.equal(data.test.images, TF.rgb_to_grayscale(original))
    assert any("converted to grayscale" in note for note in data.notes)


def test_a_run_resizes_at_load_time_never_per_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    resize = TF.resize

    def counting(images: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        calls.append(len(images))
        return resize(images, *args, **kwargs)

    monkeypatch.setattr(sandbox.train.data.TF, "resize", counting)
    root = write_fashion_mnist(tmp_path / "fm", train=100, test=20)
    raw = fashion(root, size=32)
    raw["train"]["epochs"] = 2
    metrics = train_run(load_spec(raw), device="cpu", progress=False)  # 2 epochs of 5 batches, and evaluation
    assert sorted(calls) == [20, 20, 80]  # once per split
    assert metrics["dataset"]["input"] == [1, 32, 32]
    assert any("resized once" in note for note in metrics["dataset"]["notes"])


def test_channels_that_no_conversion_reaches_are_named_by_key(tmp_path: Path) -> None:
    root = write_cifar(tmp_path / "c", train=10, test=10)
    spec = load_spec(tiny_spec({"dataset": "cifar10", "root": str(root)}, channels=2, size=32))
    with pytest.raises(SpecError) as err:
        load_for(spec, "cpu")
    assert err.value.path == "input.channels" and "1 (grayscale) or 3 (RGB)" in str(err.value)
