"""Fine-tuning: weights from a randomly initialized torchvision GoogLeNet (nothing downloads), a run
directory's own weights, and frozen modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
import yaml
from timm.layers import FrozenBatchNormAct2d
from torchvision.ops.misc import FrozenBatchNorm2d

from sandbox.errors import SpecError
from sandbox.model.builder import build
from sandbox.model.weights import state_misfit
from sandbox.runs import write_weights
from sandbox.spec.recipe import Init, train_config
from sandbox.train.finetune import check_freeze, freeze, load_init, unfreeze
from tests.paths import SEARCH_SPACES

FROZEN = (FrozenBatchNorm2d, FrozenBatchNormAct2d)  # timm freezes plain and fused batch norms
AUX = [{"after": "inception4a"}, {"after": "inception4d"}]


def googlenet(classes: int = 5, aux: bool = True) -> dict[str, Any]:
    raw = yaml.safe_load((SEARCH_SPACES / "googlenet.yaml").read_text())
    return {**raw, "classes": classes, **({"aux": AUX} if aux else {})}


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialized torchvision GoogLeNet with aux heads, saved as torchvision saves one."""
    torch.manual_seed(0)
    model = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path_factory.mktemp("weights") / "googlenet.pth"
    torch.save(model.state_dict(), path)
    return path


def test_init_key_parses() -> None:
    init = train_config({"init": {"weights": "w.pth", "from": "torchvision"}}).init
    assert init == Init(str(Path("w.pth").resolve()), "torchvision")
    assert train_config({"init": "run"}).init == Init(str(Path("run").resolve()), "sandbox")
    for raw, path in [({"from": "timm"}, "train.init"), ({"weights": ""}, "train.init.weights")]:
        with pytest.raises(SpecError) as err:
            train_config({"init": raw})
        assert err.value.path == path


def test_torchvision_weights_load_all_but_the_heads_for_other_classes(torchvision_file: Path) -> None:
    state = torch.load(torchvision_file, weights_only=True)
    torch.manual_seed(1)
    model = build(googlenet(classes=5))
    fresh_head = model.head.fc.weight.detach().clone()
    report = load_init(model, Init(str(torchvision_file), "torchvision"))
    heads = {f"{where}.{kind}" for where in ("head.fc", "aux.0.fc2", "aux.1.fc2") for kind in ("weight", "bias")}
    assert set(report.reshaped) == heads and not report.unplaced and not report.unfilled
    assert report.loaded == report.total - len(heads) == len(state) - len(heads)
    assert torch.equal(model.stages[1].blocks[2].branches[1][1].bn.weight, state["inception4c.branch2.1.bn.weight"])
    assert torch.equal(model.aux[1].fc1.weight, state["aux2.fc1.weight"])
    assert torch.equal(model.head.fc.weight, fresh_head)  # reinitialized for 5 classes, as built
    lines = report.lines()
    assert lines[0].startswith(f"init: loaded {report.loaded} of the network's {report.total} tensors from")
    assert "head.fc.weight" in lines[1] and "shape differs" in lines[1]


def test_weights_the_network_has_no_place_for_are_reported(torchvision_file: Path) -> None:
    model = build(googlenet(classes=1000, aux=False))
    report = load_init(model, Init(str(torchvision_file), "torchvision"))
    assert report.loaded == report.total and not report.reshaped
    assert report.unplaced and all(key.startswith(("aux1.", "aux2.")) for key in report.unplaced)
    assert any("not in the network" in line for line in report.lines())


def test_a_run_directory_starts_a_network_of_the_same_spec(tmp_path: Path, small_spec: Any) -> None:
    torch.manual_seed(0)
    trained = build(small_spec())
    write_weights(tmp_path, trained)
    model = build(small_spec())
    report = load_init(model, Init(str(tmp_path), "sandbox"))
    assert report.loaded == report.total and not (report.reshaped or report.unplaced or report.unfilled)
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), trained.state_dict().values(), strict=True)
    )


def test_weights_of_which_nothing_fits_are_an_error(torchvision_file: Path, tmp_path: Path, small_spec: Any) -> None:
    with pytest.raises(SpecError, match="no tensor of .* fits this network with sandbox's names") as err:
        load_init(build(small_spec()), Init(str(torchvision_file), "sandbox"))
    assert err.value.path == "train.init"
    with pytest.raises(SpecError, match="no such file") as err:
        load_init(build(small_spec()), Init(str(tmp_path / "missing.pth"), "torchvision"))
    assert err.value.path == "train.init.weights"
    (tmp_path / "garbage.pth").write_bytes(b"not a state dict")
    with pytest.raises(SpecError, match="cannot read") as err:
        load_init(build(small_spec()), Init(str(tmp_path / "garbage.pth"), "torchvision"))
    assert "\n" not in str(err.value)


def test_freeze_stops_parameters_and_statistics_and_unfreeze_restores_the_layout(small_spec: Any) -> None:
    model = build(small_spec())
    keys = list(model.state_dict())
    freeze(model, ["stem", "stages.0"])
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert not any(p.requires_grad for p in model.stages[0].parameters())
    assert all(p.requires_grad for p in model.stages[1].parameters())
    assert any(isinstance(m, FROZEN) for m in model.stem.modules())
    model.train()
    x = torch.rand(4, 1, 28, 28)
    before = model.stem(x)
    model.stem(torch.rand(4, 1, 28, 28) * 5)  # a training-mode pass moves no frozen statistic
    assert torch.equal(model.stem(x), before)
    unfreeze(model, ["stem", "stages.0"])
    assert list(model.state_dict()) == keys and all(p.requires_grad for p in model.parameters())
    assert not any(isinstance(m, FROZEN) for m in model.modules())
    assert state_misfit(model.state_dict(), build(small_spec())) is None  # loads where the spec builds


def test_an_unknown_module_path_names_its_entry(small_spec: Any) -> None:
    with pytest.raises(SpecError) as err:
        check_freeze(build(small_spec(), device="meta"), ["stem", "stages.7"])
    assert err.value.path == "train.freeze[1]" and "stages.0" in str(err.value)


def test_timm_weights_load_through_their_key_map(tmp_path: Path) -> None:
    import timm

    with torch.device("meta"):
        shapes = timm.create_model("inception_v4", pretrained=False).state_dict()
    state = {k: torch.rand(v.shape) if v.is_floating_point() else torch.zeros(v.shape, dtype=v.dtype)
             for k, v in shapes.items()}  # fmt: skip
    torch.save(state, tmp_path / "v4.pth")
    raw = yaml.safe_load((SEARCH_SPACES / "inception_v4.yaml").read_text())
    model = build({**raw, "classes": 10}, device="cpu")
    report = load_init(model, Init(str(tmp_path / "v4.pth"), "timm"))
    assert set(report.reshaped) == {"head.fc.weight", "head.fc.bias"} and not report.unplaced
    assert report.loaded == len(state) - 2


def test_weights_of_another_library_name_the_from_key(torchvision_file: Path) -> None:
    with pytest.raises(SpecError, match="is `from` right") as err:
        load_init(build(googlenet(), device="meta"), Init(str(torchvision_file), "timm"))
    assert err.value.path == "train.init.from"
