"""Every shipped network exports to a .py file that runs with torch alone and computes what the
sandbox network computes, given the same weights (those of the parity tests, redrawn so that the
outputs depend on every layer)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from sandbox import build
from sandbox.export import export
from tests.export.test_export import run_standalone
from tests.model.references import redraw
from tests.paths import SEARCH_SPACES

# name → the smallest input its layers leave a pixel for (v3/v4/ResNet 75, as torchvision says of v3);
# the exported network takes any size, so the check runs small, while export itself checks the full size.
SHIPPED = {
    "googlenet": 64, "googlenet_2014": 64, "bn_inception": 64, "inception_v3": 75,
    "inception_v4": 75, "inception_resnet_v2": 75, "nin": 67, "fmnist_baseline": 28,
}  # fmt: skip


@pytest.fixture
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow  # exports eight networks (each checked at its full size) and runs them in a subprocess
@pytest.mark.usefixtures("one_thread")
def test_every_shipped_network_exports_to_a_file_that_computes_it_with_torch_alone(tmp_path: Path) -> None:
    cases, lines = {}, {}
    for name, size in SHIPPED.items():
        spec = SEARCH_SPACES / f"{name}.yaml"
        py = export(spec, tmp_path / f"{name}.py")[0]  # refuses unless the file reproduces the spec's network
        lines[name] = len(py.read_text().splitlines())
        model = build(spec).eval()
        redraw(model)
        images = torch.rand(2, model.spec.channels, size, size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            expected = model(images)
        files = {"weights": tmp_path / f"{name}.pt", "images": tmp_path / f"{name}.images.pt"}
        torch.save({k: v for k, v in model.state_dict().items() if not k.startswith("aux.")}, files["weights"])
        torch.save(images, files["images"])
        torch.save(expected, tmp_path / f"{name}.expected.pt")
        cases[name] = {"py": str(py), "expected": str(tmp_path / f"{name}.expected.pt"), **map_str(files)}

    results = run_standalone(cases, tmp_path)  # a fresh interpreter in which only torch imports

    assert results.pop("imported") == []
    for name, result in results.items():
        assert result["scale"] > 1e-3, name  # a network whose outputs vanished would prove nothing
        assert result["py"] <= 1e-5 * max(1.0, result["scale"]), (name, result)
    assert all(lines[name] < 800 for name in SHIPPED), lines  # Inception-ResNet-v2's 40 residual modules: ~750


def map_str(files: dict[str, Path]) -> dict[str, str]:
    return {key: str(path) for key, path in files.items()}
