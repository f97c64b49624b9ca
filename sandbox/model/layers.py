"""Shared building blocks for plugins: conv → norm → act from timm's layer factories.

Plugins take `norm` and `act` by name (`batchnorm`, `none`; `relu`, `gelu`, ...), which timm
resolves, so a new norm or activation needs no code here.
"""

from __future__ import annotations

from timm.layers import ConvNormAct, create_conv2d, get_act_layer
from torch import nn

NO_NORM = "none"


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    dilation: int = 1,
    norm: str = "batchnorm",
    act: str = "relu",
    norm_eps: float = 1e-5,
) -> nn.Module:
    """A convolution that keeps `ceil(size / stride)`, then norm and activation.

    With a norm the convolution has no bias (the norm's shift replaces it); with `norm: none` it
    has one, as in the 2014 GoogLeNet. Both forms name the convolution `conv`, so state dicts
    line up with torchvision's `BasicConv2d`.
    """
    if norm == NO_NORM:
        # timm's ConvNormAct drops the activation along with the norm, so build this form here.
        conv = create_conv2d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation, bias=True)
        block = nn.Sequential()
        block.add_module("conv", conv)
        block.add_module("act", get_act_layer(act)(inplace=True))
        return block
    return ConvNormAct(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        dilation=dilation,
        norm_layer=norm,
        act_layer=act,
        norm_kwargs={"eps": norm_eps},
    )
