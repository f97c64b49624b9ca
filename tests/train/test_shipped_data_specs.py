"""The shipped CIFAR-10 and 96x96 Fashion-MNIST specs build, count, and train one step on tiny
generated data in their dataset's own format (the real datasets are not needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from sandbox.model.flops import count
from sandbox.spec.load import load_spec, read_yaml
from sandbox.spec.primitives import lowest, sample
from sandbox.train.loop import train_run
from tests.cifar import write_cifar
from tests.idx import write_fashion_mnist
from tests.paths import SEARCH_SPACES


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SANDBOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SANDBOX_DATA", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def one_step(raw: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """`raw` trained for one step of 16 images on `data`, with its own recipe otherwise."""
    raw = {**raw, "data": {**raw["data"], **data}, "train": {**raw.get("train", {}), "epochs": 1, "batch_size": 16}}
    raw.pop("search", None)
    return train_run(load_spec(raw, plugin_files=()), device="cpu", progress=False)


@pytest.mark.parametrize(
    ("name", "size", "channels", "mflops"),
    [("cifar10_baseline.yaml", 32, 3, (300, 370)), ("fmnist_96.yaml", 96, 1, (540, 560))],
)
def test_shipped_spec_builds_counts_and_trains_a_step(
    tmp_path: Path, name: str, size: int, channels: int, mflops: tuple[int, int]
) -> None:
    spec = load_spec(SEARCH_SPACES / name)
    assert (spec.size, spec.channels, spec.classes) == (size, channels, 10)
    assert mflops[0] * 1e6 < count(spec).flops < mflops[1] * 1e6
    if spec.data.dataset == "cifar10":
        root = write_cifar(tmp_path / "c", train=18, test=8)
    else:
        assert spec.data.dataset == "fashion-mnist-sample"
        root = write_fashion_mnist(tmp_path / "fm", train=18, test=8)
    dataset = {"dataset": "cifar10" if channels == 3 else "fashion-mnist", "root": str(root), "val_fraction": 0.1}
    metrics = one_step(read_yaml(SEARCH_SPACES / name), dataset)
    assert metrics["dataset"]["input"] == [channels, size, size] and len(metrics["history"]) == 1
    assert metrics["history"][0]["images"] == 16


def test_the_cifar10_space_has_a_budget_a_reference_and_trainable_candidates(tmp_path: Path) -> None:
    space = read_yaml(SEARCH_SPACES / "cifar10.yaml")
    assert space["search"]["reference"] == "cifar10_baseline.yaml"
    spec = load_spec(SEARCH_SPACES / "cifar10_baseline.yaml")
    budget = load_spec(sample(space, lowest)).search.budget
    assert budget is not None and budget < count(spec).flops  # the search looks below the baseline
    smallest = sample(space, lowest)
    assert count(load_spec(smallest)).flops < budget
    root = write_cifar(tmp_path / "c", train=18, test=8)
    metrics = one_step(smallest, {"root": str(root)})
    assert metrics["dataset"]["name"] == "cifar10" and metrics["dataset"]["input"] == [3, 32, 32]
