"""search_spaces/flowers_finetune.yaml on a tiny image folder, from a randomly initialized torchvision
GoogLeNet's weights (no flower photos and no pretrained weights are on this machine; nothing downloads)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from sandbox.cli import main
from sandbox.model.builder import build
from sandbox.runs import METRICS_FILE
from sandbox.spec.overrides import load_overridden
from sandbox.train.finetune import load_init
from tests.images import write_image_folder
from tests.paths import SEARCH_SPACES

SPEC = SEARCH_SPACES / "flowers_finetune.yaml"
FLOWERS = ("daisy", "dandelion", "roses", "sunflowers", "tulips")


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    torch.save(model.state_dict(), tmp_path / "googlenet.pth")
    return tmp_path / "googlenet.pth"


def settings(weights: Path, folder: Path) -> list[str]:
    return [f"train.init.weights={weights}", f"data.root={folder}"]


def test_the_spec_loads_and_starts_from_googlenet_weights(weights: Path, tmp_path: Path) -> None:
    spec = load_overridden(SPEC, settings(weights, tmp_path))
    assert (spec.size, spec.channels, spec.classes) == (224, 3, 5)
    assert [(a.after, a.weight) for a in spec.aux] == [("inception4a", 0.3), ("inception4d", 0.3)]
    assert spec.data.dataset == "image-folder" and spec.train.init is not None
    assert spec.train.init.source == "torchvision" and spec.train.augment.resized_crop is not None
    report = load_init(build(spec), spec.train.init)
    assert set(report.reshaped) == {f"{head}.{kind}" for head in ("head.fc", "aux.0.fc2", "aux.1.fc2")
                                    for kind in ("weight", "bias")}  # fmt: skip
    assert report.loaded == report.total - 6 and not report.unplaced and not report.unfilled


@pytest.mark.slow
def test_one_epoch_on_a_tiny_flower_folder(
    weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """GoogLeNet at 224 trains one epoch on 40 small photos (resized at load) and reports its init."""
    monkeypatch.setenv("SANDBOX_CACHE", str(tmp_path / "cache"))
    folder = write_image_folder(tmp_path / "flowers", dict.fromkeys(FLOWERS, 8), size=(48, 40))
    out = tmp_path / "run"
    sets = [*settings(weights, folder), "train.epochs=1", "train.batch_size=16", "train.warmup_epochs=0"]
    threads = torch.get_num_threads()
    try:
        code = main(["train", str(SPEC), "--out", str(out), "--device", "cpu", "--threads", "1", "--set", *sets])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert code == 0
    assert "init: loaded 358 of the network's 364 tensors" in printed and "head.fc.weight" in printed
    assert (out / METRICS_FILE).exists() and (out / "curves.png").exists()
