"""googlenet.yaml is torchvision's GoogLeNet (same outputs through the key mapping); googlenet_2014.yaml the
paper's; the key maps of torchvision's and timm's references, and the errors of weights that do not fit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
import yaml
from torch import nn

from sandbox import SandboxError, build, load_spec
from sandbox.model.weights import key_map, torchvision_key
from tests.model.references import REFERENCES, redraw
from tests.paths import SEARCH_SPACES

GOOGLENET = SEARCH_SPACES / "googlenet.yaml"


def test_googlenet_yaml_reproduces_torchvision_outputs() -> None:
    reference = torchvision.models.googlenet(aux_logits=False, init_weights=True).eval()
    redraw(reference)
    model = build(GOOGLENET, torchvision_weights=reference.state_dict()).eval()
    spec = load_spec(GOOGLENET)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (spec.mean, spec.std))
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))  # images in [0, 1]

    with torch.no_grad():
        expected, actual = reference((x - mean) / std), model(x)
    assert (expected[0] - expected[1]).abs().max() > 0.1  # the check below is not vacuous
    assert (actual - expected).abs().max() <= 1e-5
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters()) == 6_624_904


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("conv1.conv.weight", "stem.conv1.conv.weight"),
        ("conv3.bn.running_var", "stem.conv3.bn.running_var"),
        ("inception3a.branch1.conv.weight", "stages.0.blocks.0.branches.0.conv.weight"),
        ("inception4c.branch2.1.bn.bias", "stages.1.blocks.2.branches.1.1.bn.bias"),
        ("inception5b.branch4.1.conv.weight", "stages.2.blocks.1.branches.3.1.conv.weight"),
        ("aux2.fc1.weight", "aux.1.fc1.weight"),
        ("fc.bias", "head.fc.bias"),
    ],
)
def test_torchvision_keys_map_to_sandbox_names(key: str, expected: str) -> None:
    googlenet = build(SEARCH_SPACES / "googlenet_2014.yaml", device="meta")  # googlenet.yaml's names, aux heads
    assert key_map("torchvision", googlenet, [key, "inception3a.branch1.conv.weight"])(key) == expected
    assert torchvision_key(key) == expected  # the same without a network, in googlenet.yaml's layout


@pytest.mark.parametrize(
    ("name", "key", "expected"),
    [
        ("inception_v3", "Conv2d_4a_3x3.bn.weight", "stem.conv4a.bn.weight"),
        ("inception_v3", "Mixed_5b.branch_pool.conv.weight", "stages.0.blocks.0.branches.3.1.conv.weight"),
        ("inception_v3", "Mixed_6a.branch3x3dbl_3.bn.bias", "stages.1.blocks.0.branches.1.2.bn.bias"),
        ("inception_v3", "Mixed_6e.branch7x7dbl_5.conv.weight", "stages.1.blocks.4.branches.2.4.conv.weight"),
        ("inception_v3", "Mixed_7a.branch7x7x3_4.conv.weight", "stages.2.blocks.0.branches.1.3.conv.weight"),
        ("inception_v3", "Mixed_7b.branch3x3_2a.conv.weight", "stages.2.blocks.1.branches.1.parts.0.conv.weight"),
        (
            "inception_v3",
            "Mixed_7c.branch3x3dbl_2.bn.running_mean",
            "stages.2.blocks.2.branches.2.trunk.1.bn.running_mean",
        ),
        ("inception_v3", "AuxLogits.conv1.conv.weight", "aux.0.conv2.conv.weight"),
        ("inception_v3", "AuxLogits.fc.bias", "aux.0.fc2.bias"),
        ("inception_v4", "features.1.conv.weight", "stem.conv2a.conv.weight"),
        ("inception_v4", "features.3.conv.bn.weight", "stages.0.blocks.0.branches.1.bn.weight"),
        ("inception_v4", "features.5.conv.conv.weight", "stages.0.blocks.2.branches.0.conv.weight"),
        ("inception_v4", "features.10.branch1.2.conv.weight", "stages.1.blocks.4.branches.1.2.conv.weight"),
        ("inception_v4", "features.19.branch1_1a.conv.weight", "stages.3.blocks.0.branches.1.parts.0.conv.weight"),
        ("inception_v4", "features.21.branch2_2.bn.bias", "stages.3.blocks.2.branches.2.trunk.2.bn.bias"),
        ("inception_v4", "last_linear.weight", "head.fc.weight"),
        ("inception_resnet_v2", "conv2d_3b.conv.weight", "stem.conv3b.conv.weight"),
        ("inception_resnet_v2", "repeat.9.branch2.2.bn.weight", "stages.0.blocks.10.branches.2.2.bn.weight"),
        ("inception_resnet_v2", "repeat_1.12.conv2d.weight", "stages.1.blocks.13.project.weight"),
        ("inception_resnet_v2", "block8.conv2d.bias", "stages.2.blocks.10.project.bias"),
        ("inception_resnet_v2", "conv2d_7b.bn.running_var", "stages.2.blocks.11.branches.0.bn.running_var"),
        ("inception_resnet_v2", "classif.bias", "head.fc.bias"),
    ],
)
def test_reference_keys_map_to_sandbox_names(name: str, key: str, expected: str) -> None:
    reference = REFERENCES[name]
    model = build(reference.path, device="meta")
    rename = key_map(
        reference.library,
        model,
        [key, {"inception_v3": "Mixed_5b.", "inception_v4": "features.21."}.get(name, "mixed_5b.")],
    )
    assert rename(key) == expected
    assert expected in model.state_dict()


@pytest.mark.parametrize(
    ("library", "state", "fragment"),
    [
        ("torchvision", {"layer1.0.conv1.weight": torch.zeros(1)},
         "torchvision weights: not a state dict of googlenet, inception_v3 (first key 'layer1.0.conv1.weight')"),
        ("timm", {"features.21.squeeze.conv.weight": torch.zeros(1)},
         "timm weights do not fit this network: unexpected key 'features.21.squeeze.conv.weight' (no layer 'squeeze'"),
        ("timm", {"features.21.branch0.conv.weight": torch.zeros(1), "features.30.branch0.conv.weight": torch.zeros(1)},
         "timm weights do not fit this network: 'features.30.branch0.conv.weight' is in module 28 of 19"),
    ],
    ids=["not-a-reference", "unknown-layer", "past-the-last-module"],
)  # fmt: skip
def test_weights_of_no_reference_or_another_layout_are_one_line(
    library: str, state: dict[str, torch.Tensor], fragment: str
) -> None:
    with pytest.raises(SandboxError) as info:
        build(REFERENCES["inception_v4"].path, device="meta", **{f"{library}_weights": state})
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_googlenet_weights_in_inception_v3_name_the_module_they_miss() -> None:
    with torch.device("meta"):
        weights = torchvision.models.googlenet(aux_logits=False, init_weights=False).state_dict()
    with pytest.raises(
        SandboxError,
        match="'inception3a.branch1.conv.weight' is in no module of this spec \\(are its modules named as in googlenet",
    ):
        build(REFERENCES["inception_v3"].path, device="meta", torchvision_weights=weights)


def test_timm_weights_from_a_file_are_read_and_mapped(tmp_path: Path) -> None:
    partial = {"features.0.conv.weight": torch.zeros(32, 3, 3, 3), "features.21.branch0.conv.weight": torch.zeros(1)}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(SandboxError, match="timm weights do not fit this network: missing stem.conv1a.bn.weight"):
        build(REFERENCES["inception_v4"].path, device="meta", timm_weights=tmp_path / "partial.pth")


def test_inception_v3_without_its_aux_head_skips_the_aux_weights(write_yaml: Callable[..., Path]) -> None:
    raw = yaml.safe_load(REFERENCES["inception_v3"].path.read_text())
    del raw["aux"]
    reference = REFERENCES["inception_v3"].make()
    model = build(write_yaml(raw), torchvision_weights=reference.state_dict())
    assert sum(p.numel() for p in model.parameters()) == 23_834_568
    assert torch.equal(
        model.stages[2].blocks[1].branches[1].parts[0].conv.weight, reference.Mixed_7b.branch3x3_2a.conv.weight
    )


def test_weights_from_a_file_skip_aux_heads_the_spec_lacks(tmp_path: Path) -> None:
    with torch.device("meta"):
        shapes = torchvision.models.googlenet(aux_logits=True, init_weights=False).state_dict()
    state = {key: torch.rand(value.shape) if value.is_floating_point() else torch.zeros(value.shape, dtype=value.dtype)
             for key, value in shapes.items()}  # fmt: skip
    assert any(key.startswith("aux1.") for key in state)
    torch.save(state, tmp_path / "googlenet.pth")
    model = build(GOOGLENET, torchvision_weights=tmp_path / "googlenet.pth")
    assert torch.equal(model.stages[1].blocks[2].branches[1][1].bn.weight, state["inception4c.branch2.1.bn.weight"])
    assert torch.equal(model.head.fc.weight, state["fc.weight"])


def test_weights_that_do_not_fit_are_an_error(small_spec: Callable[[], dict[str, Any]]) -> None:
    weights = torchvision.models.googlenet(aux_logits=False, init_weights=False).state_dict()
    with pytest.raises(SandboxError, match="torchvision weights do not fit this network"):
        build(small_spec(), torchvision_weights=weights)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(b"not a checkpoint", "cannot read torchvision weights"), (torch.zeros(3), "expected a state dict, got Tensor")],
    ids=["garbage", "tensor"],
)
def test_a_file_that_is_not_a_state_dict_is_one_line(
    tmp_path: Path, content: bytes | torch.Tensor, fragment: str
) -> None:
    file = tmp_path / "weights.pth"
    if isinstance(content, bytes):
        file.write_bytes(content)
    else:
        torch.save(content, file)
    with pytest.raises(SandboxError, match=fragment) as info:
        build(GOOGLENET, device="meta", torchvision_weights=file)
    assert "\n" not in str(info.value)


def _kernels(model: nn.Module, branch: int) -> set[tuple[int, ...]]:
    """Kernel sizes of the last convolution of branch `branch` in every Inception module."""
    return {
        [m for m in block.branches[branch].modules() if isinstance(m, nn.Conv2d)][-1].kernel_size
        for stage in model.stages
        for block in stage.blocks
    }


def test_googlenet_yaml_keeps_torchvisions_3x3_in_the_5x5_branch() -> None:
    assert _kernels(build(GOOGLENET, device="meta"), branch=2) == {(3, 3)}


def test_googlenet_2014_is_the_papers_network() -> None:
    model = build(SEARCH_SPACES / "googlenet_2014.yaml", device="meta")
    assert _kernels(model, branch=2) == {(5, 5)}
    assert not [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert all(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))
    assert len([m for m in model.stem.modules() if isinstance(m, nn.LocalResponseNorm)]) == 2
    spec = model.spec
    assert [(a.after, a.weight) for a in spec.aux] == [("inception4a", 0.3), ("inception4d", 0.3)]
    assert spec.dropout == 0.4
    logits, aux = model.forward_with_aux(torch.empty(2, 3, 224, 224, device="meta"))
    assert [tuple(t.shape) for t in (logits, *aux)] == [(2, 1000)] * 3
