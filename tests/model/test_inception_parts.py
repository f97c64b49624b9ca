"""What the Inception-v3/v4/ResNet/NiN specs are built from: unpadded modules (`padding: 0`), the
`chain` branch, average pools that skip the padding, configurable aux heads, the NiN head's
activation and the new stems; and one line naming the YAML key (exit 2) for each bad value."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from sandbox import SpecError, build, load_spec
from sandbox.model.builder import AuxHead

Spec = dict[str, Any]
MODULE = "stages[0].modules[0]"
CHAIN = {"type": "chain", "widths": [4, 4, 6], "kernels": [1, [1, 5], 3]}
CONV = {"type": "conv", "out": 4}


def _module(raw: Spec, **module: Any) -> Spec:
    raw["stages"][0]["modules"][0] = module
    return raw


def _shape(model: nn.Module, images: torch.Tensor, block: nn.Module) -> tuple[int, ...]:
    seen: list[torch.Tensor] = []
    handle = block.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        model.eval()(images)
    handle.remove()
    return tuple(seen[0].shape[1:])


def test_an_unpadded_module_shrinks_every_branch_alike(small_spec: Callable[[], Spec]) -> None:
    """Inception-v4's Mixed_4a: stride 1, every branch's last spatial layer unpadded, 28 → 26."""
    raw = _module(small_spec(), padding=0, branches=[{"type": "conv3x3", "reduce": 4, "out": 8}, CHAIN])
    model = build(raw)
    block = model.stages[0].blocks[0]
    assert _shape(model, torch.rand(1, 1, 28, 28), block) == (14, 26, 26)
    chain = block.branches[1]
    assert [layer.conv.padding for layer in chain] == [(0, 0), (0, 2), (0, 0)]  # the 1x5 keeps its own


def test_a_chain_strides_and_pads_its_last_spatial_layer(small_spec: Callable[[], Spec]) -> None:
    chain = {"type": "chain", "widths": [8, 8, 8], "kernels": [5, 1, 1], "stride": 2, "padding": 0}
    model = build(small_spec() | {"stem": chain})
    assert [(layer.conv.stride, layer.conv.padding) for layer in model.stem] == [((2, 2), (0, 0)), ((1, 1), (0, 0))] + [
        ((1, 1), (0, 0))
    ]
    assert _shape(model, torch.rand(1, 1, 28, 28), model.stem) == (8, 12, 12)  # (28 - 5) // 2 + 1


@pytest.mark.parametrize(("count_pad", "corner"), [(True, 4 / 9), (False, 1.0)])
def test_an_average_pool_may_skip_the_padding(small_spec: Callable[[], Spec], count_pad: bool, corner: float) -> None:
    raw = _module(small_spec(), branches=[{"type": "pool", "kind": "avg", "count_pad": count_pad}])
    pool = build(raw).stages[0].blocks[0].branches[0]
    assert pool(torch.ones(1, 1, 4, 4))[0, 0, 0, 0].item() == pytest.approx(corner)
    projected = _module(small_spec(), branches=[{"type": "avg_pool_proj", "out": 4, "count_pad": count_pad}])
    assert build(projected).stages[0].blocks[0].branches[0][0].count_include_pad is count_pad


def test_an_aux_head_with_a_second_conv_and_global_pool_has_no_hidden_layer(small_spec: Callable[[], Spec]) -> None:
    """Inception-v3's: pool 5/3, 1x1, an unpadded 5x5, global pool, linear."""
    raw = small_spec()
    raw["input"]["size"] = 56
    raw["aux"] = [{"after": "0.0", "pool": 5, "stride": 3, "conv": 8, "conv2": 12, "kernel2": 5, "global_pool": True,
                   "hidden": 0, "dropout": 0.0}]  # fmt: skip
    model = build(raw)
    head = model.aux[0]
    assert isinstance(head, AuxHead) and head.conv2.conv.kernel_size == (5, 5) and head.conv2.conv.padding == (0, 0)
    assert isinstance(head.fc1, nn.Identity) and head.fc2.in_features == 12
    _, aux = model.eval().forward_with_aux(torch.rand(2, 1, 56, 56))
    assert aux[0].shape == (2, 10)
    googlenet = small_spec() | {"aux": [{"after": "0.0", "conv": 8, "hidden": 16}]}
    head = build(googlenet).aux[0]  # GoogLeNet's, as before: 28 → 8x8 after the pool, flattened, fc 16, fc
    assert isinstance(head.conv2, nn.Identity) and head.fc1.in_features == 8 * 8 * 8 and head.fc2.in_features == 16


def test_the_nin_head_may_end_in_an_activation(small_spec: Callable[[], Spec]) -> None:
    model = build(small_spec() | {"head": {"fc": False, "act": "relu", "dropout": 0.0}}).eval()
    features = torch.randn(2, 24, 7, 7)
    assert torch.allclose(model.head(features), torch.relu(model.head.conv(features)).mean(dim=(2, 3)), atol=1e-6)


@pytest.mark.parametrize(
    ("stem", "size", "shape"),
    [("inception_v3", 299, (192, 35, 35)), ("inception_v4", 299, (64, 147, 147)), ("bn_inception", 224, (192, 28, 28))],
)
def test_the_stems_give_the_papers_sizes(small_spec: Callable[[], Spec], stem: str, size: int, shape: tuple) -> None:
    raw = small_spec() | {"stem": {"type": stem}, "input": {"channels": 3, "size": size}}
    with torch.device("meta"):
        model = build(raw, device="meta")
        assert tuple(model.stem(torch.empty(1, 3, size, size)).shape[1:]) == shape


BAD = [
    ("padding-negative", lambda s: s["stages"][0]["modules"][0].update(padding=-1), f"{MODULE}.padding",
     "must be 0 (unpadded) or more, got -1"),
    ("residual-padding", lambda s: s["stages"][0]["modules"][0].update(combine="residual", padding=0),
     f"{MODULE}.padding", "a residual module cannot set its branches' padding"),
    ("padding-on-a-branch-too", lambda s: _module(s, padding=0, branches=[{"type": "conv", "out": 4, "padding": 1}]),
     f"{MODULE}.branches[0].padding", "the module's padding (0) sets it"),
    ("padding-for-a-1x1", lambda s: s["stages"][0]["modules"][0].update(padding=0), f"{MODULE}.padding",
     "branch 'conv1x1' at stages[0].modules[0].branches[0] takes no padding"),
    ("unpadded-branches-disagree", lambda s: _module(s, padding=0, branches=[CONV, {"type": "conv5x5", "reduce": 4,
                                                                                    "out": 4}]),
     f"{MODULE}.branches[1]", "reduces 28x28 to 24x24, but branch 'conv'"),
    ("unpadded-collapse", lambda s: _module(s, padding=0, branches=[{"type": "conv", "out": 4, "kernel": 30}]),
     f"{MODULE}.padding", "cannot take a 16x28x28 input"),
    ("residual-that-shrinks", lambda s: _module(s, combine="residual", branches=[CONV | {"padding": 0}]),
     f"{MODULE}.branches[0]", "changes height/width 28x28 → 26x26; branches must keep them"),
    ("chain-lengths", lambda s: _module(s, branches=[{**CHAIN, "kernels": [1, 3]}]), f"{MODULE}.branches[0]",
     "widths and kernels must be lists of one length, got 3 and 2"),
    ("chain-width-zero", lambda s: _module(s, branches=[{**CHAIN, "widths": [4, 0, 6]}]), f"{MODULE}.branches[0]",
     "widths must be positive numbers of channels"),
    ("aux-kernel2-too-big", lambda s: s.update(aux=[{"after": "1.0", "conv2": 8, "kernel2": 5}]), "aux[0].kernel2",
     "the aux head's pool leaves 4x4 after '1.0', smaller than the unpadded 5x5 conv"),
    ("aux-hidden-negative", lambda s: s.update(aux=[{"after": "1.0", "hidden": -1}]), "aux[0].hidden",
     "must be 0 (none) or a positive width, got -1"),
    ("head-act-with-fc", lambda s: s["head"].update(act="relu"), "head.act",
     "only a head with fc: false (a 1x1 conv to the classes) takes an activation"),
    ("head-act-unknown", lambda s: s["head"].update(fc=False, act="rleu"), "head.act",
     "the head's activation failed to build: KeyError"),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "path", "fragment"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_values_are_one_line_at_their_key(
    small_spec: Callable[[], Spec], write_yaml: Callable[..., Path], cli: Callable[..., Any], edit, path, fragment
) -> None:
    raw = small_spec()
    edit(raw)
    file = write_yaml(raw)
    with pytest.raises(SpecError) as info:
        build(load_spec(file), device="meta")
    assert (info.value.path, fragment in info.value.message) == (path, True), info.value
    result = cli("show", file)
    assert (result.code, result.out, result.err) == (2, "", f"error: {info.value}\n")
