"""Built-in downsamples, placed between stages."""

from __future__ import annotations

from torch import nn

from sandbox import register_downsample


@register_downsample("maxpool")
def maxpool(in_channels: int, *, kernel: int = 3, stride: int = 2, ceil_mode: bool = True) -> nn.Module:
    """GoogLeNet's pool: 3x3, stride 2, rounding up, so 28 → 14 → 7 and 56 → 28 → 14."""
    return nn.MaxPool2d(kernel, stride=stride, ceil_mode=ceil_mode)


@register_downsample("avgpool")
def avgpool(in_channels: int, *, kernel: int = 2, stride: int = 2, ceil_mode: bool = True) -> nn.Module:
    """Average pooling, a smoother alternative to `maxpool` for small inputs."""
    return nn.AvgPool2d(kernel, stride=stride, ceil_mode=ceil_mode)
