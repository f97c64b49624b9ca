"""MNIST and CIFAR-10/100, read by torchvision's own classes from files the tests write."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torchvision.datasets import CIFAR10, MNIST

from sandbox.errors import SandboxError, SpecError
from sandbox.spec.load import load_spec
from sandbox.spec.recipe import DataConfig
from sandbox.train.data import fetch, load, load_for
from tests.cifar import write_cifar
from tests.idx import write_fashion_mnist
from tests.tiny_spec import tiny_spec


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SANDBOX_DATA", raising=False)


def test_mnist_is_read_from_its_own_folder_with_its_class_names(tmp_path: Path) -> None:
    root = write_fashion_mnist(tmp_path / "m", train=40, test=20, folder="MNIST")
    data = load(DataConfig("mnist", root, 0.25), "cpu")
    assert (len(data.train), len(data.val), len(data.test)) == (30, 10, 20)
    assert data.classes == tuple(MNIST.classes) and data.classes[0] == "0 - zero"
    assert data.train.images.shape[1:] == (1, 28, 28)


@pytest.mark.parametrize("classes", [10, 100])
def test_cifar_is_read_from_torchvisions_pickles(tmp_path: Path, classes: int) -> None:
    root = write_cifar(tmp_path / "c", train=203, test=50, classes=classes)
    data = load(DataConfig(f"cifar{classes}", root, 0.1), "cpu")
    assert (len(data.train) + len(data.val), len(data.test)) == (203, 50)
    assert data.classes == tuple(f"thing{i}" for i in range(classes))  # from batches.meta / meta
    assert data.test.images.shape == (50, 3, 32, 32) and data.test.images.dtype == torch.uint8
    # Channel-planar rows became (C, H, W): the red band written into channel 0 is there, not elsewhere.
    first = data.test.images[0].float()
    assert first[0].mean() > first[1].mean() + 10 and first[1].mean() == pytest.approx(first[2].mean(), abs=5)
    assert data.test.labels.tolist() == [i % classes for i in range(50)]


def test_cifar10_trains_one_step_at_its_own_size(tmp_path: Path) -> None:
    from sandbox.train.loop import train_run

    root = write_cifar(tmp_path / "c", train=64, test=16)
    spec = load_spec(tiny_spec({"dataset": "cifar10", "root": str(root)}, channels=3, size=32))
    metrics = train_run(spec, device="cpu", progress=False)
    assert metrics["dataset"]["class_names"][:2] == ["thing0", "thing1"] and metrics["dataset"]["input"] == [3, 32, 32]


def test_a_spec_with_other_classes_is_named_by_classes(tmp_path: Path) -> None:
    root = write_cifar(tmp_path / "c", train=100, test=10, classes=100)
    spec = load_spec(tiny_spec({"dataset": "cifar100", "root": str(root)}, channels=3, size=32, classes=10))
    with pytest.raises(SpecError) as err:
        load_for(spec, "cpu")
    assert err.value.path == "classes" and "cifar100 has 100 classes (thing0" in str(err.value)
    assert "the spec has 10" in str(err.value)


def test_missing_cifar_says_where_it_looked_and_what_to_put_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")  # fails at once, offline
    with pytest.raises(SandboxError) as err:
        fetch(DataConfig("cifar10", tmp_path / "nowhere"))
    message = str(err.value)
    assert "\n" not in message and message.startswith("CIFAR-10 not found")
    assert str(tmp_path / "nowhere") in message and "cifar-10-batches-py/" in message
    assert "cifar-10-python.tar.gz" in message and "--data-dir" in message


def test_a_truncated_pickle_is_one_line_naming_the_folder(tmp_path: Path) -> None:
    root = write_cifar(tmp_path / "c", train=20, test=10)
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(SandboxError) as err:
        load(DataConfig("cifar10", root, 0.5), "cpu")
    assert str(err.value).startswith(f"cannot read CIFAR-10 in {root / 'cifar-10-batches-py'}: ")
    assert "\n" not in str(err.value)


class _RunsCode:
    """What a hostile CIFAR batch holds: unpickling it calls `exec`, which would write a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


@pytest.mark.parametrize("batch", ["data_batch_1", "test_batch", "batches.meta"])
def test_a_cifar_pickle_that_runs_code_is_refused_in_one_line_without_running_it(
    tmp_path: Path, batch: str, cli: Any
) -> None:
    root = write_cifar(tmp_path / "c", train=20, test=10)
    marker = tmp_path / "ran"
    path = root / "cifar-10-batches-py" / batch
    path.write_bytes(pickle.dumps({"data": _RunsCode(marker), "labels": [0]}, protocol=2))
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec({"dataset": "cifar10", "root": str(root)}, channels=3, size=32)))
    result = cli("train", spec, "--epochs", "1", "--out", tmp_path / "run", "--device", "cpu")
    assert not marker.exists()
    assert result.code == 2 and result.err.count("\n") == 1
    assert result.err.startswith(f"error: {path}: refused, it refers to __builtin__.exec;")  # protocol 2's name


def test_a_cifar_array_of_objects_is_refused(tmp_path: Path) -> None:
    root = write_cifar(tmp_path / "c", train=20, test=10)
    path = root / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({"data": np.array([[1]], dtype=object), "labels": [0]}, protocol=2))
    with pytest.raises(SandboxError, match=f"^{path}: refused, it holds an array of dtype object"):
        load(DataConfig("cifar10", root, 0.5), "cpu")


def _as_release(path: Path, legacy_numpy: bool) -> None:
    """Re-pickle `path` as a release or a re-pickled subset is: protocol 2, bytes keys, and (a
    release pickled under numpy 1) numpy.core instead of numpy._core."""
    entry = pickle.loads(path.read_bytes())
    data = pickle.dumps({key.encode(): value for key, value in entry.items()}, protocol=2)
    path.write_bytes(data.replace(b"numpy._core", b"numpy.core") if legacy_numpy else data)


@pytest.mark.parametrize("legacy_numpy", [False, True])
def test_cifar_in_protocol_2_with_bytes_keys_reads_as_the_release_does(tmp_path: Path, legacy_numpy: bool) -> None:
    root = write_cifar(tmp_path / "c", train=20, test=10)
    for path in (root / "cifar-10-batches-py").iterdir():
        _as_release(path, legacy_numpy)
    data = load(DataConfig("cifar10", root, 0.5), "cpu")
    assert data.classes[:2] == ("thing0", "thing1") and data.test.labels.tolist() == [i % 10 for i in range(10)]


@pytest.mark.parametrize("label", [10, -1])
def test_a_cifar_label_outside_the_classes_is_one_line_at_load(tmp_path: Path, label: int) -> None:
    root = write_cifar(tmp_path / "c", train=20, test=10)
    path = root / "cifar-10-batches-py" / "test_batch"
    entry = pickle.loads(path.read_bytes())
    path.write_bytes(pickle.dumps({**entry, "labels": [label, *entry["labels"][1:]]}))
    with pytest.raises(SandboxError) as err:
        load(DataConfig("cifar10", root, 0.5), "cpu")
    assert str(err.value) == (
        f"CIFAR-10's test labels in {root / 'cifar-10-batches-py'}: label {label} is outside 0..9 (1 such labels)"
    )
