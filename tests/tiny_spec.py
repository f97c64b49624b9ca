"""A ~0.1 MFLOP spec for data tests: any input, any classes, any `data:` section."""

from __future__ import annotations

from typing import Any


def tiny_spec(data: dict[str, Any], *, channels: int = 1, size: int = 28, classes: int = 10) -> dict[str, Any]:
    return {
        "name": "tiny-data",
        "input": {"channels": channels, "size": size},
        "classes": classes,
        "stem": {"type": "conv3x3", "out": 4},
        "stages": [{"downsample": {"type": "maxpool"}, "modules": [{"branches": [{"type": "conv1x1", "out": 4}]}]}],
        "head": {"dropout": 0.0},
        "train": {"epochs": 1, "batch_size": 16, "lr": 0.05, "warmup_epochs": 0},
        "data": data,
    }
