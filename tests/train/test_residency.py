"""Where the data lives: on the device within `data.device_share` of its free memory, else on the
host with batches copied over. The host path runs here on the CPU (share 0); its CUDA parts with
torch.cuda monkeypatched, and for real under the `gpu` marker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import sandbox.train.data
import sandbox.train.memory
from sandbox.errors import SandboxError
from sandbox.spec.load import load_spec
from sandbox.spec.recipe import DataConfig
from sandbox.train.data import Split, load, residency
from sandbox.train.loop import predict, train_run
from sandbox.train.memory import require_host
from tests.idx import write_fashion_mnist
from tests.tiny_spec import tiny_spec


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SANDBOX_DATA", raising=False)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_fashion_mnist(tmp_path / "fm", train=120, test=40)


def test_share_zero_keeps_the_data_on_the_host_and_says_so(root: Path) -> None:
    data = load(DataConfig("fashion-mnist", root, 0.25, device_share=0.0), "cpu")
    assert not (data.train.resident or data.val.resident or data.test.resident)
    assert data.counts()["on_device"] is False
    assert any(note.startswith("kept on the host and copied batch by batch") for note in data.notes)
    assert load(DataConfig("fashion-mnist", root, 0.25), "cpu").train.resident  # the default share: on it


def test_the_host_path_trains_exactly_as_the_resident_one(root: Path) -> None:
    def metrics(share: float) -> dict[str, Any]:
        raw = tiny_spec({"dataset": "fashion-mnist", "root": str(root), "device_share": share})
        raw["train"]["epochs"] = 2
        return train_run(load_spec(raw), device="cpu", progress=False)

    host, resident = metrics(0.0), metrics(0.5)
    assert host["dataset"]["on_device"] is False and resident["dataset"]["on_device"] is True
    assert [r["loss"] for r in host["history"]] == [r["loss"] for r in resident["history"]]
    assert (host["val_accuracy"], host["test_accuracy"]) == (resident["val_accuracy"], resident["test_accuracy"])


def test_batches_are_the_same_on_both_paths(root: Path) -> None:
    on = load(DataConfig("fashion-mnist", root, 0.25), "cpu").train
    off = load(DataConfig("fashion-mnist", root, 0.25, device_share=0.0), "cpu").train
    order = torch.randperm(len(on), generator=torch.Generator().manual_seed(0))[:80]
    for (a, la), (b, lb) in zip(on.batches(order, 32), off.batches(order, 32), strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb)
    assert [len(labels) for _, labels in off.batches(order, 32)] == [32, 32, 16]
    assert torch.equal(off.window(5, 9), on.images[5:9])


def test_the_cuda_decision_uses_the_free_device_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1_000_000_000, 80_000_000_000))
    gpu = torch.device("cuda:0")
    assert residency(400_000_000, gpu, 0.5) == (True, None)
    resident, why = residency(600_000_000, gpu, 0.5)
    assert not resident and why is not None
    assert "kept on the host (pinned)" in why and "600.0 MB" in why and "1.0 GB free on cuda:0" in why


class Recorded(torch.Tensor):
    """A host tensor that records the copies asked of it instead of making them (no GPU here)."""

    copies: list[tuple[Any, ...]] = []

    def to(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        Recorded.copies.append((*args, kwargs.get("non_blocking")))
        return self.as_subclass(torch.Tensor)


def test_on_cuda_a_batch_is_gathered_into_pinned_memory_and_copied_asynchronously(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[bool] = []

    def buffer(shape: tuple[int, ...], *, pinned: bool) -> torch.Tensor:
        asked.append(pinned)
        return torch.empty(shape, dtype=torch.uint8).as_subclass(Recorded)

    monkeypatch.setattr(sandbox.train.data, "host_buffer", buffer)
    Recorded.copies = []
    images = torch.arange(6 * 4, dtype=torch.uint8).view(6, 1, 2, 2)
    gpu = torch.device("cuda:0")
    split = Split(images.as_subclass(Recorded), torch.arange(6), gpu, resident=False)
    batch = split.take(torch.tensor([4, 1]))
    assert torch.equal(batch, images[[4, 1]]) and asked == [True]
    split.window(2, 5)
    assert Recorded.copies == [(gpu, True), (gpu, True)]


def test_evaluation_reads_host_data_window_by_window(root: Path) -> None:
    spec = load_spec(tiny_spec({"dataset": "fashion-mnist", "root": str(root)}))
    model = sandbox.train.loop.build(spec, device="cpu")
    host = load(DataConfig("fashion-mnist", root, 0.1, device_share=0.0), "cpu").test
    resident = load(DataConfig("fashion-mnist", root, 0.1), "cpu").test
    assert torch.equal(predict(model, host, batch=16), predict(model, resident, batch=16))


def test_data_larger_than_the_host_memory_is_refused_with_its_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.train.memory, "host_available", lambda: 2_000_000_000)
    with pytest.raises(SandboxError) as err:
        require_host(60_000 * 3 * 224 * 224, "fashion-mnist at 3x224x224")
    assert str(err.value).startswith("fashion-mnist at 3x224x224 takes 9.0 GB as uint8, more than the 2.0 GB")
    assert "input.size" in str(err.value)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_real_gpu_the_host_path_copies_pinned_batches(root: Path) -> None:
    host = load(DataConfig("fashion-mnist", root, 0.25, device_share=0.0), "cuda").train
    assert host.images.device.type == "cpu" and host.images.is_pinned() and host.labels.is_cuda
    order = torch.randperm(len(host), device="cuda")
    images, labels = next(host.batches(order, 16))
    assert images.is_cuda and torch.equal(images.cpu(), host.images[order[:16].cpu()])
    assert torch.equal(labels, host.labels[order[:16]])
