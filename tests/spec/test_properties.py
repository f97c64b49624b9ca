"""Property: whatever a spec holds, loading and building it gives a network or the sandbox's own error.

Random and mutated specs (values replaced, keys deleted or inserted, values wrapped in lists or
mappings, YAML text edited or made up) must never escape as a KeyError, TypeError, torch error...
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox import SandboxError, build, load_spec
from tests.conftest import SMALL_SPEC

EXAMPLES = int(os.environ.get("SANDBOX_PROPERTY_EXAMPLES", "200"))  # raise it to hunt for bugs

TOKENS = ["conv1x1", "conv3x3", "conv5x5", "double3x3", "pool_proj", "maxpool", "avgpool", "googlenet", "none", "relu",
          "batchnorm", "0.0", "1.0", "type", "out", "reduce", "after", "repeat", "modules", "branches", "",
          "conv", "factorized", "separable", "pool", "avg_pool_proj", "stride", "padding", "kernel", "n", "combine",
          "residual", "concat", "scale", "act", "trunk", "split", "fc", "head", "max", "avg", "chain", "widths",
          "kernels", "count_pad", "conv2", "kernel2", "global_pool", "hidden", "identity"]  # fmt: skip
YAML_CHARACTERS = " \n\t:-[]{},'\"#&*!|>%@`0123456789abcxyz"
KEYS = st.sampled_from(TOKENS) | st.text(max_size=5)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 40),
    st.sampled_from([0, 2**31, 2**63, -(2**63), 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(TOKENS),
    st.text(max_size=6),
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3), max_leaves=6
)


def _slots(node: Any) -> Iterator[tuple[dict | list, Any]]:
    """Every (container, key) in a nested spec, so a mutation can land anywhere."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield node, key
        yield from _slots(value)


# The module keys and branches beyond GoogLeNet's, so that mutations reach them too.
VARIANT_SPEC: dict[str, Any] = {
    **SMALL_SPEC,
    "stages": [
        {"modules": [{"name": "r", "combine": "residual", "scale": 0.2, "act": "relu", "branches": [
            {"type": "factorized", "reduce": 4, "out": 8, "n": 3},
            {"trunk": {"type": "conv1x1", "out": 8}, "split": [{"type": "conv", "kernel": [1, 3], "out": 4},
                                                               {"type": "conv", "kernel": [3, 1], "out": 4}]},
        ]}]},
        {"modules": [{"stride": 2, "branches": [
            {"type": "conv3x3", "reduce": 4, "out": 8, "padding": 0},
            {"type": "separable", "out": 8, "kernel": 3, "padding": 0},
            {"type": "pool", "kind": "avg", "padding": 0},
            {"type": "avg_pool_proj", "out": 4, "padding": 0},
        ]}]},
    ],
    "head": {"dropout": 0.0, "fc": False},
}  # fmt: skip
# And the keys the Inception-v3/v4/ResNet/NiN specs use: an unpadded module, chains (as a stem too),
# average pools over real pixels, v3's kind of aux head, an identity residual activation, head.act.
INCEPTION_SPEC: dict[str, Any] = {
    **SMALL_SPEC,
    "stem": {"type": "chain", "widths": [16, 16], "kernels": [3, 1]},
    "stages": [
        {"modules": [{"name": "v", "padding": 0, "branches": [
            {"type": "conv3x3", "reduce": 4, "out": 8},
            {"type": "chain", "widths": [4, 4, 8], "kernels": [1, [1, 3], 3]},
        ]}]},
        {"modules": [{"stride": 2, "branches": [
            {"type": "conv", "kernel": 3, "out": 8},
            {"type": "avg_pool_proj", "out": 4, "count_pad": False},
            {"type": "pool", "kind": "avg", "count_pad": False},
        ]}, {"combine": "residual", "act": "identity", "scale": 0.5, "branches": [{"type": "conv1x1", "out": 4}]}]},
    ],
    "aux": [{"after": "v", "pool": 5, "stride": 3, "conv": 8, "conv2": 8, "kernel2": 3, "global_pool": True,
             "hidden": 0, "dropout": 0.0}],
    "head": {"dropout": 0.0, "fc": False, "act": "relu"},
}  # fmt: skip
BASES = [SMALL_SPEC, VARIANT_SPEC, INCEPTION_SPEC]


@st.composite
def mutated_specs(draw: st.DrawFn) -> dict[str, Any]:
    spec = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 4))):
        slots = list(_slots(spec))
        container, key = slots[draw(st.integers(0, len(slots) - 1))]
        operation = draw(st.sampled_from(["replace", "delete", "insert", "wrap"]))
        if operation == "replace":
            container[key] = draw(VALUES)
        elif operation == "delete":
            del container[key]
        elif operation == "insert" and isinstance(container, dict):
            container[draw(KEYS)] = draw(VALUES)
        elif operation == "insert":
            container.insert(key, draw(VALUES))
        else:
            container[key] = draw(st.sampled_from([[container[key]], {"type": container[key]}, str(container[key])]))
        if not list(_slots(spec)):
            break
    return spec


@st.composite
def edited_yaml(draw: st.DrawFn) -> str:
    """The small spec as YAML with characters deleted, inserted or replaced here and there."""
    text = yaml.safe_dump(draw(st.sampled_from(BASES)), sort_keys=False)
    for _ in range(draw(st.integers(1, 3))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 8)))
        text = text[:start] + draw(st.text(alphabet=YAML_CHARACTERS, max_size=4)) + text[end:]
    return text


def _builds_or_raises_sandbox_error(source: Path | Mapping[str, Any]) -> None:
    try:
        build(load_spec(source), device="meta")
    except SandboxError as err:
        assert str(err) and "\n" not in str(err)  # the one line the CLI prints


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty working directory, so a `plugins:` entry made of random text can import nothing."""
    path = tmp_path_factory.mktemp("properties")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(path)
        yield path


PROPERTY = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(spec=mutated_specs())
def test_mutated_specs_build_or_raise_sandbox_errors(workdir: Path, spec: dict[str, Any]) -> None:
    _builds_or_raises_sandbox_error(spec)


@PROPERTY
@given(text=edited_yaml() | st.text(max_size=60))
def test_edited_and_random_yaml_builds_or_raises_sandbox_errors(workdir: Path, text: str) -> None:
    file = workdir / "spec.yaml"
    file.write_text(text)
    _builds_or_raises_sandbox_error(file)


@pytest.mark.parametrize("base", BASES, ids=["small", "variants", "inception"])
def test_the_unmutated_specs_build(workdir: Path, base: dict[str, Any]) -> None:
    """The mutations start from specs that build, so the errors above come from the mutations."""
    assert build(load_spec(copy.deepcopy(base)), device="meta").spec.name == "small"
