"""The tiny search space the search tests share."""

from __future__ import annotations

from typing import Any


def tiny_space(**search: Any) -> dict[str, Any]:
    """A space of small networks whose FLOPs range from about 0.3 to 3 MFLOPs."""
    return {
        "name": "tiny",
        "input": {"channels": 1, "size": 28},
        "stem": {"type": "conv3x3", "out": {"int": [4, 16], "step": 4}},
        "stages": [
            {
                "modules": [
                    {
                        "branches": [
                            {"type": "conv1x1", "out": {"choice": [4, 8]}},
                            {"type": {"choice": ["conv3x3", "double3x3", "none"]}, "reduce": 4, "out": 8},
                            {"type": "pool_proj", "out": 4},
                        ]
                    }
                ]
            },
            {"downsample": {"type": "maxpool"}, "modules": [{"branches": [{"type": "conv1x1", "out": 16}]}]},
        ],
        "train": {"epochs": 1, "batch_size": 64},
        "data": {"dataset": "fashion-mnist"},
        "search": {"trials": 4, "seed": 0, **search},
    }
