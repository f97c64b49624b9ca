"""Fashion-MNIST loading (through torchvision's reader), the split, the search order, augmentation.

The other datasets: test_datasets.py (MNIST, CIFAR), test_imagefolder.py; shaping for the spec:
test_data_shape.py; device residency: test_residency.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.datasets import FashionMNIST

from sandbox.errors import SandboxError, SpecError
from sandbox.spec.datasets import SAMPLE
from sandbox.spec.recipe import DataConfig, data_config
from sandbox.train.data import (
    augment,
    find_full,
    load,
    sample_root,
    search_roots,
    to_float,
)
from tests.idx import write_fashion_mnist


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the user's cache and $SANDBOX_DATA out of every test."""
    monkeypatch.setenv("SANDBOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SANDBOX_DATA", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision's downloader, pointed at a closed local port: it fails at once, with no network."""
    monkeypatch.setattr(FashionMNIST, "mirrors", ["http://127.0.0.1:9/"])


def test_data_config_defaults_and_override(tmp_path: Path) -> None:
    assert data_config({}) == DataConfig()
    config = data_config({"dataset": SAMPLE, "root": "somewhere", "val_fraction": 0.2}, data_dir=tmp_path)
    assert config == DataConfig(SAMPLE, tmp_path.resolve(), 0.2)
    assert data_config({"dataset": "cifar100", "device_share": 0, "test_fraction": 0.3}) == DataConfig(
        "cifar100", None, 0.1, 0.3, 0.0
    )


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"dataset": "imagenet"}, "data.dataset"),
        ({"device_share": 1.5}, "data.device_share"),
        ({"device_share": -0.1}, "data.device_share"),
        ({"test_fraction": 1}, "data.test_fraction"),
        ({"val_fraction": 0}, "data.val_fraction"),
        ({"val_fraction": 1.5}, "data.val_fraction"),
        ({"val_fraction": True}, "data.val_fraction"),
        ({"root": 3}, "data.root"),
        ({"batch_size": 3}, "data.batch_size"),
    ],
)
def test_data_config_errors_name_the_key(raw: dict, path: str) -> None:
    with pytest.raises(SpecError) as err:
        data_config(raw)
    assert err.value.path == path


def test_an_unknown_dataset_lists_the_known_ones() -> None:
    with pytest.raises(SpecError) as err:
        data_config({"dataset": "imagenet"})
    for name in ("fashion-mnist", "fashion-mnist-sample", "mnist", "cifar10", "cifar100", "image-folder"):
        assert repr(name) in str(err.value)


def test_load_splits_train_into_train_and_val(tmp_path: Path) -> None:
    root = write_fashion_mnist(tmp_path / "fm", train=200, test=50)
    data = load(DataConfig("fashion-mnist", root, 0.1), "cpu")
    counts = data.counts()
    assert {k: counts[k] for k in ("name", "train", "val", "test")} == {
        "name": "fashion-mnist", "train": 180, "val": 20, "test": 50
    }  # fmt: skip
    assert counts["class_names"] == list(FashionMNIST.classes) and counts["input"] == [1, 28, 28]
    assert counts["on_device"]  # nothing resized or converted; the carved validation split is announced
    assert counts["notes"] == [
        "20 images (10%) of the training images carved as the validation split, stratified by class (data.val_fraction)"
    ]
    assert data.train.images.shape == (180, 1, 28, 28) and data.train.images.dtype == torch.uint8
    assert data.test.labels.dtype == torch.int64
    # The split is a partition of the training file, the same on every load.
    file = FashionMNIST(root, train=True)
    together = torch.cat([data.train.images, data.val.images]).flatten(1)
    assert sorted(map(bytes, together.numpy())) == sorted(map(bytes, file.data.flatten(1).numpy()))
    again = load(DataConfig("fashion-mnist", root, 0.1), "cpu")
    assert again is data  # cached: a search loads the data once


def test_full_release_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_cache: Path) -> None:
    given, env = tmp_path / "given", write_fashion_mnist(tmp_path / "env", train=20, test=10)
    monkeypatch.setenv("SANDBOX_DATA", str(env))
    assert search_roots(given) == [given, env.resolve(), private_cache / "data"]
    assert find_full(None) == env.resolve()  # --data-dir not given: $SANDBOX_DATA
    write_fashion_mnist(given, train=20, test=10)
    assert find_full(given) == given  # --data-dir first


@pytest.mark.usefixtures("no_network")
def test_missing_full_release_says_where_it_looked_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SandboxError) as err:
        find_full(tmp_path / "nowhere")
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "nowhere") in message and "--data-dir" in message and "SANDBOX_DATA" in message
    assert SAMPLE in message and "offline" in message


def test_bundled_sample_unpacks_once_into_the_cache(private_cache: Path) -> None:
    root = sample_root()
    assert root.parent == private_cache
    first = {p.name: p.stat().st_mtime_ns for p in (root / "FashionMNIST" / "raw").iterdir()}
    assert sample_root() == root
    assert {p.name: p.stat().st_mtime_ns for p in (root / "FashionMNIST" / "raw").iterdir()} == first
    data = load(DataConfig(SAMPLE, None, 0.1), "cpu")
    assert (len(data.train) + len(data.val), len(data.test)) == (5699, 2000)
    assert int(torch.bincount(data.test.labels, minlength=10).min()) > 150  # all ten classes, about balanced


def test_unreadable_files_are_a_sandbox_error(tmp_path: Path) -> None:
    root = write_fashion_mnist(tmp_path / "fm", train=20, test=10)
    (root / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    with pytest.raises(SandboxError, match="cannot read Fashion-MNIST"):
        load(DataConfig("fashion-mnist", root, 0.5), "cpu")


def images(n: int = 16) -> torch.Tensor:
    return torch.randint(1, 256, (n, 1, 28, 28), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


def test_augment_off_is_identity() -> None:
    x = images()
    assert torch.equal(augment(x, crop=0, flip=False, generator=torch.Generator()), x)


def test_flip_mirrors_some_images_and_keeps_the_rest() -> None:
    x = images(64)
    y = augment(x, crop=0, flip=True, generator=torch.Generator().manual_seed(0))
    same = (y == x).flatten(1).all(1)
    mirrored = (y == x.flip(3)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 0 < int(mirrored.sum()) < 64


def test_crop_is_a_shift_within_the_padding() -> None:
    x, pad = images(32), 2
    y = augment(x, crop=pad, flip=False, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (pad,) * 4)
    shifts = set()
    for i in range(len(x)):
        matches = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(padded[i, :, dy : dy + 28, dx : dx + 28], y[i])
        ]
        assert matches, f"image {i} is not a crop of its padded original"
        shifts.add(matches[0])
    assert len(shifts) > 5


def test_augment_is_reproducible_from_the_generator() -> None:
    x = images()
    first = augment(x, crop=2, flip=True, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, augment(x, crop=2, flip=True, generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(first, augment(x, crop=2, flip=True, generator=torch.Generator().manual_seed(4)))


def test_to_float_scales_to_unit_range() -> None:
    x = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 1, 4, 4).contiguous()
    y = to_float(x, channels_last=True)
    assert y.dtype == torch.float32 and y.min() == 0 and y.max() == 1
    assert y.is_contiguous(memory_format=torch.channels_last)


def test_a_datasets_own_normalization_published_or_measured_on_training_images() -> None:
    from sandbox.train.data import own_normalization

    gray = torch.zeros((2, 1, 4, 4), dtype=torch.uint8)
    rgb = torch.zeros((2, 3, 4, 4), dtype=torch.uint8)
    assert own_normalization("fashion-mnist-sample", gray).mean == (0.2860,)  # what specs always trained with
    assert own_normalization("fashion-mnist", rgb).std == (0.3530,) * 3  # gray repeated to RGB
    assert own_normalization("cifar10", rgb).mean == (0.4914, 0.4822, 0.4465)
    assert own_normalization("cifar100", rgb).std == (0.2673, 0.2564, 0.2762)
    gray[0] = 255  # half the pixels white, half black: mean 0.5, std 0.5
    measured = own_normalization("cifar10", gray)  # CIFAR read as gray: its published RGB figures do not apply
    assert (measured.mean, measured.std) == ((0.5,), (0.5,)) and "measured on the 2 training images" in measured.source
    blank = own_normalization("image-folder", rgb)
    assert blank.mean == (0.0,) * 3 and all(s > 0 for s in blank.std)  # never a division by zero
