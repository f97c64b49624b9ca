"""Where a process trains: its device, checked once before any data or trial, its precision and its CPU threads.

Every command resolves `--device` here first, so a missing GPU, a GPU index past the last one or
a CUDA install that cannot run a kernel is one line with exit 2 before anything loads or trains,
never a failed trial after another.
"""

from __future__ import annotations

import os

import torch

from sandbox.errors import SandboxError

CHOICES = "cpu, cuda, cuda:N or auto"
BF16_CAPABILITY = (8, 0)  # Ampere: bf16 tensor cores; older GPUs (V100, T4) only emulate it, slowly


def resolve_device(name: str) -> torch.device:
    """`auto` is the GPU when one works; any CUDA device asked for must exist and run a kernel."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as err:
        raise SandboxError(f"--device: unknown device {name!r} (use {CHOICES})") from err
    if device.type not in ("cpu", "cuda"):
        raise SandboxError(f"--device: unsupported device {name!r} (use {CHOICES})")
    if device.type == "cuda":
        _check_cuda(device)
    return device


def _check_cuda(device: torch.device) -> None:
    if not torch.cuda.is_available():
        built = f"torch {torch.__version__}, CUDA {torch.version.cuda or 'none'}"
        raise SandboxError(
            f"--device {device}: this machine has no CUDA GPU that torch can use ({built}); use --device cpu"
        )
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise SandboxError(
            f"--device {device}: this machine has {count} GPU{'s' * (count != 1)} (cuda:0 to cuda:{count - 1})"
        )
    try:
        torch.ones(1, device=device).add_(1).item()  # a driver too old for the wheels fails here, not mid-trial
    except RuntimeError as err:
        raise SandboxError(f"--device {device}: CUDA cannot run a kernel here: {str(err).splitlines()[0]}") from err


STICKY_CUDA_ERRORS = ("illegal memory access", "device-side assert", "unspecified launch failure", "misaligned address")


def is_device_lost(err: BaseException) -> bool:
    """A CUDA error that poisons the process's context: every later kernel in it fails too, so only
    a fresh process can train again (torch 2.14 raises `torch.AcceleratorError`; older ones a
    RuntimeError whose text names the fault)."""
    accelerator_error = getattr(torch, "AcceleratorError", None)
    if accelerator_error is not None and isinstance(err, accelerator_error):
        return True
    return isinstance(err, RuntimeError) and any(fault in str(err) for fault in STICKY_CUDA_ERRORS)


def uses_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast where it pays: GPUs with native bf16 (compute capability 8.0 and up, asked of
    this device, not the current one) and CPUs with AMX tiles.

    CPUs with AVX-512-BF16 but no AMX are left in fp32: on such a 2-core Xeon, bf16 convolutions
    ran about 2x slower than fp32 ones and a whole training step was no faster (bench/README.md).
    """
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= BF16_CAPABILITY
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def usable_cores() -> int:
    """The cores this process may run on: its affinity mask (a container's or taskset's share), not the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def set_cpu_threads(requested: int | None) -> int:
    """Set and return this process's intra-op thread count: `--threads`, else one.

    One thread is the default because it is never much slower than the best choice: on a quiet
    2-core machine two threads trained about 1.6x faster, but with another job on one core two
    OpenMP threads ran 7-26x slower than one (bench/README.md, "CPU threads"), and a default that
    followed the load at start would change the results' last bits from one run to the next and
    still be wrong when the load changes. A search uses more cores by running more workers.
    """
    if requested is not None and requested < 1:
        raise SandboxError(f"--threads: expected a positive integer, got {requested}")
    threads = requested or 1
    torch.set_num_threads(threads)
    return threads
