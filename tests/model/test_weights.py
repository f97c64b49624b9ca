"""googlenet.yaml is torchvision's GoogLeNet (same outputs through the key mapping); googlenet_2014.yaml the paper's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from torch import nn

from sandbox import SandboxError, build, load_spec
from sandbox.model.weights import torchvision_key
from tests.paths import SEARCH_SPACES

GOOGLENET = SEARCH_SPACES / "googlenet.yaml"


def _redraw(model: nn.Module, seed: int = 0) -> None:
    """Redraw weights and batch-norm statistics so that outputs depend on every layer.

    With torchvision's own init (std 0.01) the signal vanishes with depth: the logits barely depend
    on the input (a wrong input normalization changes them by 1e-13) and the subnormal activations
    make the forward pass 20x slower, so a parity check on those weights would prove nothing.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0, 0.1, generator=generator)
            elif isinstance(module, nn.Linear):
                module.weight.normal_(0, module.in_features**-0.5, generator=generator)


def test_googlenet_yaml_reproduces_torchvision_outputs() -> None:
    reference = torchvision.models.googlenet(aux_logits=False, init_weights=True).eval()
    _redraw(reference)
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
    assert torchvision_key(key) == expected


def test_a_key_that_is_not_googlenet_is_an_error() -> None:
    with pytest.raises(SandboxError, match="unexpected key 'layer1.0.conv1.weight'"):
        torchvision_key("layer1.0.conv1.weight")


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
