"""Devices, precision and CPU threads, resolved once per process; CUDA paths tested with torch.cuda monkeypatched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import sandbox.train.device as device_module
from sandbox.errors import SandboxError
from sandbox.train.device import resolve_device, set_cpu_threads, uses_bf16


@pytest.fixture
def one_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.cuda as a one-GPU machine sees it, as far as resolving a device asks."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_a_gpu_index_past_the_last_is_refused_naming_the_count(one_gpu: None) -> None:
    with pytest.raises(SandboxError, match=r"--device cuda:7: this machine has 1 GPU \(cuda:0 to cuda:0\)"):
        resolve_device("cuda:7")


def test_a_gpu_that_cannot_run_a_kernel_is_refused_up_front(one_gpu: None) -> None:
    if torch.version.cuda is None:
        pytest.skip("a CPU-only torch build has no CUDA kernels to fail")
    # Here torch says a GPU is there, but no driver runs it: the case of a driver too old for the wheels.
    with pytest.raises(SandboxError, match="--device cuda:0: CUDA cannot run a kernel here"):
        resolve_device("cuda:0")


def test_cuda_asked_for_without_cuda_names_the_torch_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SandboxError, match=r"no CUDA GPU that torch can use \(torch .*\); use --device cpu"):
        resolve_device("cuda:0")
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize(("capability", "bf16"), [((7, 0), False), ((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_bf16_only_on_gpus_with_native_bf16(
    monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], bf16: bool
) -> None:
    asked: list[torch.device] = []

    def device_capability(device: torch.device) -> tuple[int, int]:
        asked.append(device)
        return capability

    monkeypatch.setattr(torch.cuda, "get_device_capability", device_capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # counts emulation: not asked
    assert uses_bf16("auto", torch.device("cuda:1")) is bf16
    assert asked == [torch.device("cuda:1")]  # the trial's own device, not the current one
    assert uses_bf16("fp32", torch.device("cuda:1")) is False


def test_one_thread_unless_asked_for_more_whatever_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "usable_cores", lambda: 4)
    before = torch.get_num_threads()
    try:
        assert set_cpu_threads(None) == 1 and torch.get_num_threads() == 1
        assert set_cpu_threads(3) == 3 and torch.get_num_threads() == 3
        with pytest.raises(SandboxError, match="--threads"):
            set_cpu_threads(0)
    finally:
        torch.set_num_threads(before)


def test_commands_refuse_an_unavailable_device_before_loading_anything(
    monkeypatch: pytest.MonkeyPatch, cli, tmp_path: Path, write_yaml, small_spec
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec = write_yaml(small_spec())
    space = small_spec()
    space["stem"]["out"] = {"choice": [8, 16]}
    for args in (
        ("train", spec, "--device", "cuda", "--out", tmp_path / "run"),
        ("search", write_yaml(space, "space.yaml"), "--device", "cuda:1", "--out", tmp_path / "search"),
        ("evaluate", tmp_path / "missing-run", "--device", "cuda"),
    ):
        result = cli(*args)
        assert result.code == 2 and result.err.count("\n") == 1, result.err
        assert "no CUDA GPU" in result.err
    assert not (tmp_path / "run").exists() and not (tmp_path / "search").exists()


@pytest.mark.parametrize(("device", "compiled"), [("cpu", False), ("cpu", True), ("cuda:0", False)])
def test_a_finished_run_gives_back_cached_memory_and_compiled_graphs(
    monkeypatch: pytest.MonkeyPatch, device: str, compiled: bool
) -> None:
    from sandbox.train.loop import release

    calls: list[str] = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    monkeypatch.setattr(torch._dynamo, "reset", lambda: calls.append("dynamo reset"))
    release(torch.device(device), compiled=compiled)
    assert calls == ["empty_cache"] * device.startswith("cuda") + ["dynamo reset"] * compiled
