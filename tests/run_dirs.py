"""Run directories as `sandbox train` and `sandbox search` leave them, made in tests without training.

Weights are random with randomized batch-norm statistics, so that an exported copy which mixed up
a layer, a key or the normalization could not agree with the original by accident.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file
from torch import nn

from sandbox.model.builder import InceptionNet, build


def trained_like(spec: Mapping[str, Any], seed: int = 0) -> InceptionNet:
    """The spec's network with every weight and batch-norm statistic random (eval mode)."""
    torch.manual_seed(seed)
    model = build(spec)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


def make_run_dir(directory: Path, spec: Mapping[str, Any], metrics: Mapping[str, Any] | None = None) -> InceptionNet:
    """Write spec.yaml, model.safetensors (aux heads included) and metrics.json; return the network."""
    directory.mkdir(parents=True, exist_ok=True)
    model = trained_like(spec)
    (directory / "spec.yaml").write_text(yaml.safe_dump(dict(spec), sort_keys=False))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, directory / "model.safetensors")
    default = {  # what `sandbox train` writes, in part
        "test_accuracy": 0.8987,
        "val_accuracy": 0.9012,
        "epochs": 3,
        "device_name": "cpu",
        "train_precision": "fp32",
        "dataset": {"name": "fashion-mnist", "train": 54000, "val": 6000, "test": 10000},
    }
    (directory / "metrics.json").write_text(json.dumps(dict(metrics or default)))
    return model


def make_search_dir(directory: Path, spec: Mapping[str, Any]) -> InceptionNet:
    """A search run directory: study.db and best.yaml beside `best/`, the best trial's run directory."""
    model = make_run_dir(directory / "best", spec)
    (directory / "best.yaml").write_text(yaml.safe_dump(dict(spec), sort_keys=False))
    (directory / "study.db").write_bytes(b"")
    return model
