"""How much memory a dataset may take: free host memory, free device memory, sizes in words."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from sandbox.errors import SandboxError


def host_available() -> int:
    """Bytes the host can still give without swapping: MemAvailable on Linux, free pages elsewhere."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: assume it fits, and let the allocation say otherwise


def device_free(device: torch.device) -> int:
    """Free bytes on `device`: what the CUDA driver reports, or the host's on the CPU."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return host_available()


def require_host(nbytes: int, what: str) -> None:
    """A clear error, before allocating, when `what` would not fit in the host's free memory."""
    available = host_available()
    if nbytes > available:
        raise SandboxError(
            f"{what} takes {size_text(nbytes)} as uint8, more than the {size_text(available)} of free host "
            "memory: lower input.size, or use a smaller dataset"
        )


def size_text(nbytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    raise AssertionError("unreachable")
