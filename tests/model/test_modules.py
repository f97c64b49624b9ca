"""Reduction, residual and split modules and the NiN head: shapes, what they compute, and the errors
naming the YAML key (both sizes for a reduction whose branches disagree)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from sandbox import SpecError, build
from sandbox.model.blocks import ConvHead, ResidualInception, Split

Spec = dict[str, Any]
REDUCTION = [
    {"type": "conv3x3", "reduce": 8, "out": 16},
    {"type": "double3x3", "reduce": 4, "out": 8},
    {"type": "pool"},  # a pass-through pool: the input's 16 channels
]
SPLIT = {"trunk": {"type": "conv1x1", "out": 8}, "split": [{"type": "conv", "kernel": [1, 3], "out": 4},
                                                          {"type": "conv", "kernel": [3, 1], "out": 6}]}  # fmt: skip


def _module(raw: Spec, **module: Any) -> Spec:
    raw["stages"][0]["modules"][0] = module
    return raw


def _output(model: torch.nn.Module, block: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    handle = block.register_forward_hook(lambda _m, _i, out: seen.append(out))
    model.eval()(images)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize(("padding", "size"), [(None, 14), (0, 13)])
def test_a_reduction_module_strides_every_branch(
    small_spec: Callable[[], Spec], padding: int | None, size: int
) -> None:
    branches = [dict(b, padding=padding) if padding is not None else b for b in REDUCTION]
    model = build(_module(small_spec(), stride=2, branches=branches))
    out = _output(model, model.stages[0].blocks[0], torch.rand(2, 1, 28, 28))
    assert out.shape == (2, 16 + 8 + 16, size, size)
    assert all(
        branch(torch.rand(1, 16, 28, 28)).shape[2:] == (size, size) for branch in model.stages[0].blocks[0].branches
    )


def test_reduction_branches_that_disagree_name_the_branch_and_both_sizes(small_spec: Callable[[], Spec]) -> None:
    branches = [REDUCTION[0], dict(REDUCTION[1], padding=0), REDUCTION[2]]
    with pytest.raises(SpecError) as info:
        build(_module(small_spec(), stride=2, branches=branches), device="meta")
    assert info.value.path == "stages[0].modules[0].branches[1]"
    assert "branch 'double3x3'" in info.value.message and "28x28 to 13x13" in info.value.message
    assert "branch 'conv3x3'" in info.value.message and "to 14x14" in info.value.message


def test_a_residual_module_adds_the_scaled_projection_to_its_input(small_spec: Callable[[], Spec]) -> None:
    torch.manual_seed(0)
    raw = _module(small_spec(), combine="residual", scale=0.25, act="relu", branches=[{"type": "conv1x1", "out": 8}])
    model = build(raw).eval()
    block = model.stages[0].blocks[0]
    assert isinstance(block, ResidualInception) and block.project.weight.shape == (16, 8, 1, 1)
    x = torch.randn(2, 16, 28, 28)
    expected = torch.relu(x + 0.25 * block.project(block.branches[0](x)))
    assert torch.allclose(block(x), expected)
    assert _output(model, block, torch.rand(2, 1, 28, 28)).shape == (2, 16, 28, 28)  # the input's width


def test_a_split_branch_concatenates_its_parts_on_the_trunks_output(small_spec: Callable[[], Spec]) -> None:
    model = build(_module(small_spec(), branches=[{"type": "conv1x1", "out": 4}, SPLIT])).eval()
    split = model.stages[0].blocks[0].branches[1]
    assert isinstance(split, Split) and len(split.parts) == 2
    x = torch.randn(2, 16, 28, 28)
    middle = split.trunk(x)
    assert torch.equal(split(x), torch.cat([split.parts[0](middle), split.parts[1](middle)], dim=1))
    assert [p.conv.kernel_size for p in split.parts] == [(1, 3), (3, 1)]
    assert _output(model, model.stages[0].blocks[0], torch.rand(2, 1, 28, 28)).shape == (2, 4 + 4 + 6, 28, 28)


def test_a_split_in_a_reduction_module_strides_its_trunk(small_spec: Callable[[], Spec]) -> None:
    model = build(_module(small_spec(), stride=2, branches=[REDUCTION[2], SPLIT]))
    split = model.stages[0].blocks[0].branches[1]
    assert split.trunk.conv.stride == (2, 2) and all(p.conv.stride == (1, 1) for p in split.parts)


def test_a_split_part_that_changes_the_size_is_named(small_spec: Callable[[], Spec]) -> None:
    split = {**SPLIT, "split": [SPLIT["split"][0], {"type": "conv", "kernel": 3, "out": 4, "padding": 0}]}
    with pytest.raises(SpecError) as info:
        build(_module(small_spec(), branches=[split]), device="meta")
    assert info.value.path == "stages[0].modules[0].branches[0].split[1]"
    assert "28x28 → 26x26" in info.value.message


def test_a_stride_that_leaves_no_pixels_names_the_stride(small_spec: Callable[[], Spec]) -> None:
    raw = small_spec()
    raw["input"]["size"] = 3
    raw["stages"] = [{"modules": [{"stride": 2, "branches": [{"type": "conv", "kernel": 5, "out": 4, "padding": 0}]}]}]
    with pytest.raises(SpecError) as info:
        build(raw, device="meta")
    assert info.value.path == "stages[0].modules[0].stride"
    assert "cannot take a 16x3x3 input" in info.value.message


def test_the_nin_head_is_a_1x1_conv_to_the_classes_then_global_average_pooling(
    small_spec: Callable[[], Spec],
) -> None:
    model = build(small_spec() | {"head": {"fc": False, "dropout": 0.0}}).eval()
    assert isinstance(model.head, ConvHead) and model.head.conv.weight.shape == (10, 24, 1, 1)
    features = torch.randn(2, 24, 14, 14)
    assert torch.allclose(model.head(features), model.head.conv(features).mean(dim=(2, 3)), atol=1e-6)
    assert not [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
