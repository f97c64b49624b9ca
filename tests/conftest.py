"""Shared fixtures: a small valid spec, YAML files in tmp_path, the CLI, an isolated plugin registry."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.cli import main
from sandbox.registry import REGISTRY

SMALL_SPEC: dict[str, Any] = {
    "name": "small",
    "input": {"channels": 1, "size": 28},
    "classes": 10,
    "stem": {"type": "conv3x3", "out": 16},
    "stages": [
        {
            "modules": [
                {
                    "branches": [
                        {"type": "conv1x1", "out": 8},
                        {"type": "conv3x3", "reduce": 8, "out": 16},
                        {"type": "double3x3", "reduce": 4, "out": 8},
                        {"type": "pool_proj", "out": 8},
                    ]
                }
            ]
        },
        {
            "downsample": {"type": "maxpool"},
            "modules": [{"branches": [{"type": "conv1x1", "out": 16}, {"type": "conv5x5", "reduce": 4, "out": 8}]}],
        },
    ],
    "head": {"dropout": 0.0},
}


@pytest.fixture(scope="session", autouse=True)
def one_cpu_thread() -> Iterator[None]:
    """One intra-op CPU thread for the whole run, as the sandbox trains and searches by default (and as
    this process ran anyway from the first in-process search on, which sets it): on a busy 2-core
    machine OpenMP's spinning threads made the model and export tests about twice as slow."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def small_spec() -> Callable[[], dict[str, Any]]:
    """A factory of fresh copies of a small valid 28x28 spec, so tests can mutate theirs freely."""
    return lambda: copy.deepcopy(SMALL_SPEC)


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[..., Path]:
    """Write a mapping (dumped as YAML) or raw text to a file in tmp_path and return its path."""

    def write(content: Any, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
        return path

    return write


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run `python -m sandbox ARGS` in-process and return its exit code, stdout and stderr."""

    def run(*args: str | Path) -> CliResult:
        capsys.readouterr()  # drop anything printed before
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def isolated_registry() -> Iterator[None]:
    """Snapshot the global plugin registry and restore it, so plugins a test loads do not leak."""
    REGISTRY.discover()
    snapshot = REGISTRY.snapshot()
    yield
    REGISTRY.restore(snapshot)
