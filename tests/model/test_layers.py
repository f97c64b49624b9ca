"""`conv_norm_act`: asymmetric kernels, explicit padding, stride and groups, with and without a norm."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sandbox.layers import conv_norm_act


@pytest.mark.parametrize("norm", ["batchnorm", "none"])
@pytest.mark.parametrize(
    ("kernel", "options", "size"),
    [
        ((1, 7), {}, (17, 17)),  # the default padding keeps the size for either orientation
        ([7, 1], {}, (17, 17)),  # a YAML list is a pair, not timm's mixed kernels
        (3, {"stride": 2}, (9, 9)),  # ceil(17 / 2)
        (3, {"stride": 2, "padding": 0}, (8, 8)),  # "valid": (17 - 3) // 2 + 1
        ((1, 3), {"padding": [0, 0]}, (17, 15)),
        (3, {"padding": 2}, (19, 19)),
    ],
)
def test_kernel_padding_and_stride_give_the_documented_size(
    kernel: int | tuple[int, int] | list[int], options: dict[str, object], size: tuple[int, int], norm: str
) -> None:
    layer = conv_norm_act(4, 6, kernel, norm=norm, **options)  # type: ignore[arg-type]
    assert type(layer.conv) is nn.Conv2d
    assert layer(torch.rand(2, 4, 17, 17)).shape == (2, 6, *size)


def test_groups_split_the_channels() -> None:
    depthwise = conv_norm_act(8, 8, 3, groups=8)
    assert depthwise.conv.weight.shape == (8, 1, 3, 3)
    assert conv_norm_act(8, 8, 3, groups=2).conv.weight.shape == (8, 4, 3, 3)
