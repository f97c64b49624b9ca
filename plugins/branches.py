"""The built-in Inception branches; each keeps height and width.

Names are part of the public interface: specs refer to them. Every branch takes `norm` and `act`
(batch norm + ReLU by default; `norm: none` gives the 2014 network without batch norm).
"""

from __future__ import annotations

from torch import nn

from sandbox import register_branch
from sandbox.layers import conv_norm_act


@register_branch("conv1x1")
def conv1x1(
    in_channels: int, *, out: int, norm: str = "batchnorm", act: str = "relu", norm_eps: float = 1e-5
) -> nn.Module:
    """A 1x1 convolution: the module's pointwise path."""
    return conv_norm_act(in_channels, out, 1, norm=norm, act=act, norm_eps=norm_eps)


def _reduced(
    in_channels: int, reduce: int, out: int, kernels: tuple[int, ...], norm: str, act: str, norm_eps: float
) -> nn.Sequential:
    """1x1 reduction to `reduce` channels, then one convolution per kernel size to `out`."""
    layers = [conv_norm_act(in_channels, reduce, 1, norm=norm, act=act, norm_eps=norm_eps)]
    width = reduce
    for kernel in kernels:
        layers.append(conv_norm_act(width, out, kernel, norm=norm, act=act, norm_eps=norm_eps))
        width = out
    return nn.Sequential(*layers)


@register_branch("conv3x3")
def conv3x3(
    in_channels: int,
    *,
    out: int,
    reduce: int,
    norm: str = "batchnorm",
    act: str = "relu",
    norm_eps: float = 1e-5,
) -> nn.Module:
    """1x1 reduce, then 3x3."""
    return _reduced(in_channels, reduce, out, (3,), norm, act, norm_eps)


@register_branch("conv5x5")
def conv5x5(
    in_channels: int,
    *,
    out: int,
    reduce: int,
    norm: str = "batchnorm",
    act: str = "relu",
    norm_eps: float = 1e-5,
) -> nn.Module:
    """1x1 reduce, then a true 5x5 (the 2014 paper's branch)."""
    return _reduced(in_channels, reduce, out, (5,), norm, act, norm_eps)


@register_branch("double3x3")
def double3x3(
    in_channels: int,
    *,
    out: int,
    reduce: int,
    norm: str = "batchnorm",
    act: str = "relu",
    norm_eps: float = 1e-5,
) -> nn.Module:
    """1x1 reduce, then two 3x3: the factorized 5x5 of Inception v2/v3 (same field, fewer FLOPs)."""
    return _reduced(in_channels, reduce, out, (3, 3), norm, act, norm_eps)


@register_branch("pool_proj")
def pool_proj(
    in_channels: int, *, out: int, norm: str = "batchnorm", act: str = "relu", norm_eps: float = 1e-5
) -> nn.Module:
    """3x3 max-pool with stride 1, then a 1x1 projection."""
    return nn.Sequential(
        nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
        conv_norm_act(in_channels, out, 1, norm=norm, act=act, norm_eps=norm_eps),
    )
