"""The supernet against standalone networks: same outputs with inherited weights, same FLOPs."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sandbox import SpecError, register_branch
from sandbox.model.builder import build
from sandbox.model.flops import count
from sandbox.search.oneshot.supernet import Supernet
from sandbox.space.bounds import random_suggest
from sandbox.spec.load import read_yaml
from sandbox.spec.primitives import recording, sample

SPACE: dict[str, Any] = {
    "name": "tiny-space",
    "input": {"channels": 1, "size": 16},
    "classes": 5,
    "stem": {"type": "conv3x3", "out": {"choice": [4, 8]}},
    "stages": [
        {
            "modules": [
                {
                    "repeat": {"int": [1, 2]},
                    "branches": [
                        {"type": "conv1x1", "out": {"choice": [4, 6]}},
                        {"type": {"choice": ["conv3x3", "double3x3"]}, "reduce": 4, "out": {"choice": [4, 8]}},
                        {"choice": [{"type": "conv5x5", "reduce": 2, "out": 4}, "none"]},
                    ],
                },
                {"combine": "residual", "branches": [{"type": "conv1x1", "out": {"choice": [2, 4]}}]},
            ]
        },
        {
            "choice": [
                {"downsample": {"type": "maxpool"}, "modules": [{"branches": [{"type": "pool_proj", "out": 4}]}]},
                "none",
            ]
        },
    ],
    "head": {"dropout": {"choice": [0.0, 0.5]}},
}


def subnets(net: Supernet, space: dict[str, Any], n: int, seed: int = 0) -> list[Any]:
    rng = random.Random(seed)
    found = []
    for _ in range(n):
        params: dict[str, Any] = {}
        sample(space, recording(random_suggest(rng), params))
        found.append(net.select(params))
    return found


@pytest.fixture
def net() -> Supernet:
    torch.manual_seed(0)
    supernet = Supernet(SPACE, Path.cwd())
    for module in supernet.modules():  # statistics other than 0 and 1, so eval mode tests their slicing
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.running_mean, -1, 1)
            nn.init.uniform_(module.running_var, 0.5, 2)
    return supernet


@pytest.mark.parametrize("train", [False, True])
def test_a_subnet_computes_what_the_standalone_network_with_its_weights_does(net: Supernet, train: bool) -> None:
    x = torch.rand(3, 1, 16, 16)
    seen = set()
    for subnet in subnets(net, SPACE, 12):
        seen.add((len(subnet.stages), sum(len(s.modules) for s in subnet.stages), subnet.stem.call.params["out"]))
        standalone = build(subnet.spec)
        standalone.load_state_dict(net.standalone_state(subnet))  # strict: every tensor, no extra one
        torch.manual_seed(1)
        expected = standalone.train(train)(x)
        torch.manual_seed(1)  # the same dropout mask
        got = net.train(train)(x, subnet)
        torch.testing.assert_close(got, expected)
    assert len(seen) > 3  # stages dropped and kept, repeats 1 and 2, both stem widths


def test_a_subnet_counts_the_flops_of_its_spec(net: Supernet) -> None:
    for subnet in subnets(net, SPACE, 8, seed=2):
        with FlopCounterMode(display=False) as counter:
            net.eval()(torch.rand(1, 1, 16, 16), subnet)
        assert counter.get_total_flops() == count(subnet.spec).flops


def test_widths_share_their_first_channels(net: Supernet) -> None:
    narrow = net.select(_params(stem=4))
    wide = net.select(_params(stem=8))
    narrow_state, wide_state = net.standalone_state(narrow), net.standalone_state(wide)
    assert narrow_state["stem.conv.weight"].shape[0] == 4
    torch.testing.assert_close(narrow_state["stem.conv.weight"], wide_state["stem.conv.weight"][:4])
    key = "stages.0.blocks.0.branches.0.conv.weight"  # its input is the stem's width: cut on both axes
    torch.testing.assert_close(narrow_state[key], wide_state[key][:, :4])
    loss = net.train()(torch.rand(2, 1, 16, 16), narrow).square().mean()
    loss.backward()
    grad = next(h for h in net.holders if h.wide is not None).wide  # the stem's holder comes first
    assert grad is not None
    weight = grad.get_parameter("conv.weight")
    assert weight.grad is not None and weight.grad[:4].abs().sum() > 0 and weight.grad[4:].abs().sum() == 0


def _params(stem: int) -> dict[str, Any]:
    return {
        "stem.out": stem,
        "stages[0].modules[0].repeat": 1,
        "stages[0].modules[0].branches[0].out": 4,
        "stages[0].modules[0].branches[1].type": "conv3x3",
        "stages[0].modules[0].branches[1].out": 4,
        "stages[0].modules[0].branches[2]": "none",
        "stages[0].modules[1].branches[0].out": 2,
        "stages[1]": "none",
        "head.dropout": 0.0,
    }


def test_the_quickstart_table_params_select_the_table_specs() -> None:
    space = read_yaml("search_spaces/quickstart.yaml")
    net = Supernet(space, Path("search_spaces"))
    row_params = {
        "stem.out": 32,
        "stages[0].modules[0].branches[0].out": 24,
        "stages[0].modules[0].branches[1].type": "double3x3",
        "stages[0].modules[0].branches[1].out": 32,
        "stages[0].modules[0].branches[2]": "double3x3",
        "stages[1].modules[0].repeat": 1,
        "stages[1].modules[0].branches[0].out": 32,
        "stages[1].modules[0].branches[1].type": "double3x3",
        "stages[1].modules[0].branches[1].out": 48,
        "stages[1].modules[0].branches[2]": "none",
        "stages[2]": "none",
        "head.dropout": 0.2,
    }  # the table's row 1 (bench/results/quickstart_table.jsonl): 12,245,184 FLOPs
    subnet = net.select(row_params)
    assert count(subnet.spec).flops == 12245184
    assert [len(m.branches) for s in subnet.stages for m in s.modules] == [4, 3]


class Gate(nn.Module):
    """A plugin's own layer: a learned per-channel gate (nothing the supernet knows how to cut)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.randn(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(1, -1, 1, 1)


def test_a_plugin_with_its_own_layers_gets_separate_weights(isolated_registry: None) -> None:
    @register_branch("gated")
    def gated(in_channels: int, *, out: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(in_channels, out, 1), Gate(out))

    space = copy.deepcopy(SPACE)
    space["stages"][0]["modules"][0]["branches"][0] = {"type": "gated", "out": {"choice": [4, 6]}}
    net = Supernet(space, Path.cwd())
    separate = [h for h in net.holders if h.wide is None]
    assert separate and all(len(h.separate) > 1 for h in separate)  # one module per width and input
    x = torch.rand(2, 1, 16, 16)
    for subnet in subnets(net, space, 4):
        standalone = build(subnet.spec)
        standalone.load_state_dict(net.standalone_state(subnet))
        torch.testing.assert_close(net.eval()(x, subnet), standalone.eval()(x))


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda s: s["input"].update(size={"choice": [16, 32]}), "input.size"),
        (lambda s: s.update(aux=[{"after": "0.0"}]), "aux"),
        (lambda s: s["stages"][0]["modules"][0]["branches"][0].update(norm_eps={"float": [1e-5, 1e-3]}),
         "stages[0].modules[0].branches[0].norm_eps"),
        (lambda s: s["stages"][0]["modules"][1].update(scale={"choice": [0.1, 0.2]}), "stages[0].modules[1].scale"),
        (lambda s: s["stages"][0]["modules"][0]["branches"].append(
            {"trunk": {"type": "conv1x1", "out": 4}, "split": [{"type": "conv1x1", "out": 2}]}),
         "stages[0].modules[0].branches[3]"),
    ],
)  # fmt: skip
def test_what_the_supernet_cannot_hold_is_refused_by_key(change: Any, key: str) -> None:
    space = copy.deepcopy(SPACE)
    change(space)
    with pytest.raises(SpecError) as err:
        Supernet(space, Path.cwd())
    assert err.value.path == key


def test_a_subnet_is_selected_by_its_concrete_spec_too(net: Supernet) -> None:
    for subnet in subnets(net, SPACE, 16, seed=5):
        concrete = sample(SPACE, lambda p, params=subnet.params: params[p.path])
        again = net.select_spec({**concrete, "name": "renamed"})
        assert again.spec.raw | {"name": "x"} == subnet.spec.raw | {"name": "x"}
        assert [u.slot for _, u in again.uses()] == [u.slot for _, u in subnet.uses()]


def test_a_spec_outside_the_space_is_refused_at_its_key(net: Supernet) -> None:
    concrete = sample(SPACE, lambda p: _params(stem=4)[p.path] if p.path in _params(4) else None)
    concrete["stem"] = {"type": "conv3x3", "out": 12}
    with pytest.raises(SpecError) as err:
        net.select_spec(concrete)
    assert err.value.path == "stem"
