"""Fixtures the trainer's tests share: a private cache, one CPU thread, tiny synthetic Fashion-MNIST files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.idx import write_idx


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SANDBOX_DATA", raising=False)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny networks gain nothing from threads, and on a busy machine OpenMP's spinning threads make
    them 10-30x slower (measured on a shared 2-core CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    """300 training and 100 test images whose class is their brightness: learnable after global pooling."""
    generator = torch.Generator().manual_seed(0)
    raw = tmp_path / "fm" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", 300), ("t10k", 100)):
        labels = torch.arange(n) % 10
        images = torch.randint(0, 40, (n, 28, 28), generator=generator) + 20 * labels.view(-1, 1, 1)
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
    return tmp_path / "fm"
