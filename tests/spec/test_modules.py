"""The module keys (`stride`, `combine`, `scale`, `act`), split branches and `head.fc`: what they load
into, and one line naming the YAML key (exit 2 on the CLI) for each bad value."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox import SpecError, build, load_spec
from sandbox.spec.schema import SplitSpec, branch_calls

pytestmark = pytest.mark.usefixtures("isolated_registry")

Spec = dict[str, Any]
MODULE = "stages[0].modules[0]"
UNSTRIDED_BRANCH = """
from torch import nn
from sandbox import register_branch

@register_branch("unstrided")
def unstrided(in_channels: int, *, out: int) -> nn.Module:
    return nn.Conv2d(in_channels, out, 1)
"""
SPLIT = {"trunk": {"type": "conv1x1", "out": 8}, "split": [{"type": "conv", "kernel": [1, 3], "out": 4}]}


def module(raw: Spec) -> Spec:
    return raw["stages"][0]["modules"][0]


def first_branch(raw: Spec) -> Spec:
    return module(raw)["branches"][0]


BAD = [
    ("unknown-module-key", lambda s: module(s).update(strid=2), f"{MODULE}.strid", "unknown key (allowed here: name,"),
    ("stride-zero", lambda s: module(s).update(stride=0), f"{MODULE}.stride", "must be positive, got 0"),
    ("residual-stride", lambda s: module(s).update(combine="residual", stride=2), f"{MODULE}.stride",
     "a residual module cannot have stride 2"),
    ("combine-unknown", lambda s: module(s).update(combine="add"), f"{MODULE}.combine",
     "expected one of 'concat', 'residual', got 'add'"),
    ("scale-zero", lambda s: module(s).update(combine="residual", scale=0), f"{MODULE}.scale",
     "the residual's scale must be positive, got 0"),
    ("scale-infinite", lambda s: module(s).update(combine="residual", scale=float("inf")), f"{MODULE}.scale",
     "must be a finite number"),
    ("residual-act-unknown", lambda s: module(s).update(combine="residual", act="rleu"), f"{MODULE}.act",
     "the residual's activation failed to build: KeyError"),
    ("split-empty", lambda s: module(s)["branches"].append({"trunk": {"type": "conv1x1", "out": 4}, "split": []}),
     f"{MODULE}.branches[4].split", "expected a non-empty list of branches to split into, got an empty list"),
    ("split-no-trunk", lambda s: module(s)["branches"].append({"split": [{"type": "conv1x1", "out": 4}]}),
     f"{MODULE}.branches[4]", "missing key 'trunk'"),
    ("split-with-type", lambda s: module(s)["branches"].append(SPLIT | {"type": "conv1x1"}),
     f"{MODULE}.branches[4].type", "unknown key (allowed here: trunk, split)"),
    ("split-part-unknown-key", lambda s: module(s)["branches"].append(
        {**SPLIT, "split": [{"type": "conv", "out": 4, "kernal": 3}]}), f"{MODULE}.branches[4].split[0].kernal",
     "unknown key for branch 'conv'"),
    ("stride-on-a-branch-too", lambda s: (module(s).update(stride=2), first_branch(s).update(stride=2)),
     f"{MODULE}.branches[0].stride", "the module's stride (2) sets it"),
    ("branch-without-stride", lambda s: (s.update(plugins=["plugin.py"]), module(s).update(stride=2),
                                         first_branch(s).update(type="unstrided")),
     f"{MODULE}.stride", "branch 'unstrided' at stages[0].modules[0].branches[0] takes no stride"),
    ("kernel-triple", lambda s: module(s)["branches"].append({"type": "conv", "out": 4, "kernel": [1, 3, 3]}),
     f"{MODULE}.branches[4]", "kernel must be k or [height, width], got a list of 3"),
    ("head-fc-text", lambda s: s["head"].update(fc="no"), "head.fc", "expected a bool, got a string 'no'"),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "path", "fragment"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_module_keys_are_one_line_at_their_key(
    small_spec: Callable[[], Spec], write_yaml: Callable[..., Path], cli: Callable[..., Any], edit, path, fragment
) -> None:
    raw = small_spec()
    edit(raw)
    file = write_yaml(raw)
    (file.parent / "plugin.py").write_text(textwrap.dedent(UNSTRIDED_BRANCH))
    with pytest.raises(SpecError) as info:
        build(load_spec(file), device="meta")
    assert (info.value.path, fragment in info.value.message) == (path, True), info.value
    result = cli("show", file)
    assert (result.code, result.out, result.err) == (2, "", f"error: {info.value}\n")


def test_module_keys_load_into_the_module_spec(small_spec: Callable[[], Spec]) -> None:
    raw = small_spec()
    module(raw).update(name="r", repeat=2, combine="residual", scale=0.2, act="gelu")
    module(raw)["branches"].append(SPLIT)
    raw["stages"][1]["modules"][0]["stride"] = 2
    spec = load_spec(raw)
    first, reduction = spec.stages[0].modules[0], spec.stages[1].modules[0]
    assert (first.combine, first.scale, first.act, first.stride) == ("residual", 0.2, "gelu", 1)
    assert spec.stages[0].modules[1].combine == "residual"  # repeat copies every key
    split = first.branches[4]
    assert isinstance(split, SplitSpec) and [c.type for c in branch_calls(split)] == ["conv1x1", "conv"]
    assert split.parts[0].path == f"{MODULE}.branches[4].split[0]"
    assert reduction.stride == 2 and all(call.params["stride"] == 2 for call in reduction.calls)
    assert all(call.sources["stride"] == "stages[1].modules[0].stride" for call in reduction.calls)
    assert spec.fc is True and load_spec(raw | {"head": {"fc": False}}).fc is False


def test_a_modules_activation_follows_the_defaults(small_spec: Callable[[], Spec]) -> None:
    assert module_act(small_spec() | {"defaults": {"act": "gelu"}}) == "gelu"
    assert module_act(small_spec()) == "relu"


def module_act(raw: Spec) -> str:
    return load_spec(raw).stages[0].modules[0].act
