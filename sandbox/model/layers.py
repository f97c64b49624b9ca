"""Shared building blocks for plugins: conv → norm → act from timm's layer factories.

Plugins take `norm` and `act` by name (`batchnorm`, `none`; `relu`, `gelu`, ...), which timm
resolves, so a new norm or activation needs no code here.
"""

from __future__ import annotations

from typing import Any

from timm.layers import ConvNormAct, create_conv2d, get_act_layer
from torch import nn

NO_NORM = "none"


Kernel = int | tuple[int, int]  # k, or (height, width) for a 1x7 or 7x1 convolution
Padding = int | tuple[int, int] | None  # None: timm's symmetric padding; 0: none (a "valid" convolution)


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel_size: Kernel | list[int],
    *,
    stride: int = 1,
    padding: Padding | list[int] = None,
    dilation: int = 1,
    groups: int = 1,
    norm: str = "batchnorm",
    act: str = "relu",
    norm_eps: float = 1e-5,
) -> nn.Module:
    """A convolution, then norm and activation.

    `kernel_size` is k or a (height, width) pair: (1, 7) and (7, 1) are the factorized 7x7 of
    Inception-v3. `padding` None (the default) is timm's symmetric padding, which keeps the size at
    stride 1 and gives `ceil(size / 2)` at stride 2 (odd kernels); an int or a (height, width) pair
    pads exactly that, and 0 pads nothing, as the reduction modules of Inception-v3/v4 do. `groups` splits the channels
    (`groups=in_channels` is a depthwise convolution). Lists (from YAML) are read as pairs.

    With a norm the convolution has no bias (the norm's shift replaces it); with `norm: none` it
    has one, as in the 2014 GoogLeNet. Both forms name the convolution `conv`, so state dicts
    line up with torchvision's `BasicConv2d`.
    """
    kernel: Any = _pair(kernel_size)  # Any: timm annotates an int, and takes a pair (a list would mean mixed kernels)
    pad = "" if padding is None else _pair(padding)  # "": timm's symmetric padding
    shape: dict[str, Any] = {"stride": stride, "padding": pad, "dilation": dilation, "groups": groups}
    if norm == NO_NORM:
        # timm's ConvNormAct drops the activation along with the norm, so build this form here.
        block = nn.Sequential()
        block.add_module("conv", create_conv2d(in_channels, out_channels, kernel, bias=True, **shape))
        block.add_module("act", get_act_layer(act)(inplace=True))
        return block
    return ConvNormAct(
        in_channels, out_channels, kernel, **shape, norm_layer=norm, act_layer=act, norm_kwargs={"eps": norm_eps}
    )


def _pair(value: int | tuple[int, int] | list[int]) -> int | tuple[int, ...]:
    return tuple(value) if isinstance(value, list | tuple) else value
