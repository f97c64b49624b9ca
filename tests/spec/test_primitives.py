"""Search primitives: parsing, sampling, dropped branches, type-choice keys, FLOP bounds."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from optuna.distributions import FloatDistribution, IntDistribution

from sandbox.errors import SpecError
from sandbox.model.flops import count
from sandbox.space.bounds import smallest_flops, space_flops
from sandbox.spec.load import validate
from sandbox.spec.primitives import Primitive, lowest, parse_primitive, primitives, sample, signature


def space(small_spec) -> dict[str, Any]:
    raw = small_spec()
    raw["stem"]["out"] = {"int": [8, 32], "step": 8}
    branches = raw["stages"][0]["modules"][0]["branches"]
    branches[1] = {"type": {"choice": ["conv3x3", "double3x3", "none"]}, "reduce": 8, "out": 16}
    branches[2] = {"choice": [{"type": "conv5x5", "reduce": 4, "out": {"choice": [8, 16]}}, "none"]}
    raw["train"] = {"lr": {"float": [0.01, 0.3], "log": True}}
    return raw


def test_primitives_are_named_by_their_yaml_path(small_spec) -> None:
    dims = {p.path: p.distribution for p in primitives(space(small_spec))}
    assert dims["stem.out"] == IntDistribution(8, 32, step=8)
    assert dims["train.lr"] == FloatDistribution(0.01, 0.3, log=True)
    assert dims["stages[0].modules[0].branches[1].type"].choices == ("conv3x3", "double3x3", "none")
    # a primitive nested in a choice's option is its own dimension, named after the option
    assert dims["stages[0].modules[0].branches[2]=conv5x5.out"].choices == (8, 16)


def test_sampling_yields_a_concrete_spec(small_spec) -> None:
    concrete = sample(space(small_spec), lowest)
    assert concrete["stem"]["out"] == 8
    assert concrete["train"]["lr"] == 0.01
    assert concrete["stages"][0]["modules"][0]["branches"][2] == {"type": "conv5x5", "reduce": 4, "out": 8}
    assert not primitives(concrete)
    validate(concrete, base=Path.cwd())


def test_none_drops_a_branch(small_spec) -> None:
    def pick_none(primitive: Primitive) -> Any:
        choices = getattr(primitive.distribution, "choices", None)
        return "none" if choices and "none" in choices else lowest(primitive)

    branches = sample(space(small_spec), pick_none)["stages"][0]["modules"][0]["branches"]
    assert [b["type"] for b in branches] == ["conv1x1", "pool_proj"]


def test_keys_a_chosen_type_does_not_take_are_an_error(small_spec) -> None:
    raw = small_spec()
    raw["stages"][0]["modules"][0]["branches"][1] = {"type": {"choice": ["conv1x1", "conv3x3"]}, "reduce": 8, "out": 8}
    with pytest.raises(SpecError) as err:
        primitives(raw)
    assert err.value.path == "stages[0].modules[0].branches[1].reduce"
    assert "conv1x1" in str(err.value)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"int": [32, 8]}, "x.int"),
        ({"int": [1.5, 8]}, "x.int"),
        ({"float": [0.1]}, "x.float"),
        ({"choice": []}, "x.choice"),
        ({"int": [1, 8], "stp": 2}, "x.stp"),
        ({"float": [0.1, 1.0], "log": "yes"}, "x.log"),
        ({"float": [math.nan, math.nan]}, "x.float"),  # every trial failed, and the search exited 0
        ({"float": [0.1, math.nan]}, "x.float"),
        ({"float": [0.1, math.inf]}, "x.float"),
        ({"float": [0.1, 1.0], "step": math.inf}, "x.step"),
    ],
)
def test_malformed_primitives_name_their_key(value: dict[str, Any], path: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_primitive(value, "x")
    assert err.value.path == path


def test_a_misspelt_primitive_key_is_named_with_the_likely_one() -> None:
    with pytest.raises(SpecError, match=r"unknown key in a \{int: ...\} search primitive; did you mean 'step'\?"):
        parse_primitive({"int": [1, 8], "stp": 2}, "x")


def test_signature_changes_when_a_choice_list_changes(small_spec) -> None:
    before = space(small_spec)
    after = space(small_spec)
    after["stages"][0]["modules"][0]["branches"][1]["type"]["choice"].append("conv5x5")
    changed = {k for k in signature(before) if signature(before)[k] != signature(after).get(k)}
    assert changed == {"stages[0].modules[0].branches[1].type"}


def test_flop_bounds_bracket_every_candidate(small_spec) -> None:
    raw = space(small_spec)
    bounds = space_flops(raw, Path.cwd(), budget=None, samples=8)
    smallest = smallest_flops(raw, Path.cwd())
    assert smallest == bounds.smallest
    corner = count(validate(sample(raw, lowest), base=Path.cwd())).flops
    assert bounds.smallest <= corner <= bounds.largest
    assert bounds.smallest < bounds.largest


def test_budget_share_is_measured(small_spec) -> None:
    raw = space(small_spec)
    bounds = space_flops(raw, Path.cwd(), budget=10**12, samples=8)
    assert bounds.within_budget == 1.0
    bounds = space_flops(raw, Path.cwd(), budget=1, samples=8)
    assert bounds.within_budget == 0.0


def test_a_space_no_candidate_of_which_builds_names_the_key_at_fault(small_spec) -> None:
    raw = space(small_spec)
    raw["defaults"] = {"act": "rleu"}  # every candidate's stem fails alike
    with pytest.raises(SpecError) as info:
        space_flops(raw, Path.cwd(), budget=None, samples=4)
    assert info.value.path == "defaults.act"
    assert info.value.message.startswith("no candidate of this search space is a valid network; the first: ")
    assert "'rleu'" in info.value.message


@pytest.mark.parametrize("where", ["trunk", "split"])
def test_a_type_choice_inside_a_split_branch_is_checked_against_each_plugin(small_spec, where: str) -> None:
    """PLUGIN_SLOTS knows that a split's trunk and parts are branch calls, at any depth."""
    chosen = {"type": {"choice": ["conv1x1", "conv3x3"]}, "reduce": 4, "out": 8}
    split: dict[str, Any] = {"trunk": {"type": "conv1x1", "out": 8}, "split": [{"type": "conv1x1", "out": 4}]}
    if where == "trunk":
        split["trunk"] = chosen
    else:
        split["split"] = [{"trunk": {"type": "conv1x1", "out": 4}, "split": [chosen]}]  # a split inside a split
    raw = small_spec()
    raw["stages"][0]["modules"][0]["branches"].append(split)
    with pytest.raises(SpecError) as err:
        primitives(raw)
    key = "trunk" if where == "trunk" else "split[0].split[0]"
    assert err.value.path == f"stages[0].modules[0].branches[4].{key}.reduce"
    assert "conv1x1" in err.value.message


def test_module_keys_and_split_branches_are_searchable(small_spec) -> None:
    raw = small_spec()
    module = raw["stages"][1]["modules"][0]
    module.update(stride={"choice": [1, 2]}, combine={"choice": ["concat", "residual"]}, scale={"float": [0.1, 1.0]})
    part = {"type": "conv", "kernel": {"choice": [[1, 3], [3, 1]]}, "out": {"int": [4, 8]}}
    module["branches"].append({"trunk": {"type": "conv1x1", "out": 8}, "split": [part]})
    dims = {p.path: p.distribution for p in primitives(raw)}
    at = "stages[1].modules[0]"
    assert dims[f"{at}.stride"].choices == (1, 2) and dims[f"{at}.scale"] == FloatDistribution(0.1, 1.0)
    assert dims[f"{at}.branches[2].split[0].out"] == IntDistribution(4, 8)

    def reduce(primitive: Primitive) -> Any:
        return 2 if primitive.path.endswith(".stride") else lowest(primitive)

    low, reduced = (validate(sample(raw, pick), base=Path.cwd()).stages[1].modules[0] for pick in (lowest, reduce))
    assert (low.stride, low.combine, low.scale) == (1, "concat", 0.1)
    assert reduced.stride == 2 and reduced.branches[2].trunk.params["stride"] == 2
