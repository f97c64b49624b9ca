"""Exporting reduction, residual and split modules, asymmetric, padded and grouped convolutions and the
NiN head: the file reproduces the network (export checks it), has its state-dict keys, passes ruff and
carries only the building blocks it uses."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from sandbox import build
from sandbox.export import export

Spec = dict[str, Any]
SPLIT = {"trunk": {"type": "conv1x1", "out": 8}, "split": [{"type": "conv", "kernel": [1, 3], "out": 4},
                                                          {"type": "conv", "kernel": [3, 1], "out": 4}]}  # fmt: skip


def variants(raw: Spec, norm: str) -> Spec:
    raw["defaults"] = {"norm": norm, "act": "gelu"}
    raw["stages"][0]["modules"] = [
        {"name": "res", "combine": "residual", "scale": 0.2,
         "branches": [{"type": "conv1x1", "out": 8}, {"type": "factorized", "reduce": 4, "out": 8, "n": 5}, SPLIT]},
        {"name": "reduce", "stride": 2,
         "branches": [{"type": "conv3x3", "reduce": 8, "out": 16, "padding": 0}, {"type": "separable", "out": 8,
                      "padding": 0}, {"type": "pool", "padding": 0}, {**SPLIT, "trunk": {"type": "conv", "out": 8,
                      "padding": 0}}]},
    ]  # fmt: skip
    raw["head"] = {"fc": False, "dropout": 0.1}
    return raw


def _import(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("norm", ["batchnorm", "none"])
def test_variant_modules_export_to_a_file_that_reproduces_them(
    small_spec: Callable[[], Spec], write_yaml: Callable[..., Path], tmp_path: Path, norm: str
) -> None:
    raw = variants(small_spec(), norm)
    py = export(write_yaml(raw), tmp_path / "variants.py")[0]  # refuses unless the file computes the sandbox network
    text = py.read_text()
    for block in ("class ResidualInception(Inception):", "class Split(nn.Module):", "class ConvHead(nn.Module):"):
        assert block in text
    assert "(1, 5)" in text and "(5, 1)" in text and "groups=16" in text and "padding=0" in text
    exported = _import(py).build()
    assert exported.state_dict().keys() == build(raw).state_dict().keys()
    for args in (
        ("check", "--isolated", "--line-length", "120"),
        ("format", "--check", "--isolated", "--line-length", "120"),
    ):
        result = subprocess.run([sys.executable, "-m", "ruff", *args, str(py)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout


def test_a_plain_network_carries_none_of_the_new_blocks(
    small_spec: Callable[[], Spec], write_yaml: Callable[..., Path], tmp_path: Path
) -> None:
    text = export(write_yaml(small_spec()), tmp_path / "plain.py")[0].read_text()
    assert "class Inception(nn.Module)" in text and "class Head(nn.Module)" in text
    for unused in ("ResidualInception", "Split", "ConvHead"):
        assert unused not in text


def test_a_padding_that_varies_is_a_parameter_of_the_conv_class(
    small_spec: Callable[[], Spec], write_yaml: Callable[..., Path], tmp_path: Path
) -> None:
    raw = small_spec()
    raw["stages"][0]["modules"][0]["branches"].append({"type": "conv", "out": 4, "kernel": [1, 3]})
    valid = [{"type": "conv", "out": 4, "kernel": 3, "padding": 0}, {"type": "pool", "padding": 0}]
    raw["stages"][1]["modules"][0] = {"stride": 2, "branches": valid}
    module = _import(export(write_yaml(raw), tmp_path / "padded.py")[0])
    torch.manual_seed(0)
    layer = module.ConvBNAct(4, 4, (1, 3), padding=(0, 0))
    assert layer.conv.padding == (0, 0) and module.ConvBNAct(4, 4, (1, 7)).conv.padding == (0, 3)
