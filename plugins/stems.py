"""Built-in stems: the layers before the first Inception stage."""

from __future__ import annotations

from torch import nn

from sandbox import register_stem
from sandbox.layers import conv_norm_act


@register_stem("googlenet")
def googlenet(
    in_channels: int,
    *,
    norm: str = "batchnorm",
    act: str = "relu",
    norm_eps: float = 1e-5,
    lrn: bool = False,
) -> nn.Module:
    """GoogLeNet's stem for 224x224 inputs: 7x7/2 conv, pool, 1x1 64, 3x3 192, pool (224 → 28).

    Module names follow torchvision (`conv1`, `maxpool1`, ...) so its weights map by name.
    `lrn: true` adds the 2014 paper's local response normalizations after the first pool and
    after the 3x3 conv.
    """
    stem = nn.Sequential()
    stem.add_module("conv1", conv_norm_act(in_channels, 64, 7, stride=2, norm=norm, act=act, norm_eps=norm_eps))
    stem.add_module("maxpool1", nn.MaxPool2d(3, stride=2, ceil_mode=True))
    if lrn:
        stem.add_module("lrn1", nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))
    stem.add_module("conv2", conv_norm_act(64, 64, 1, norm=norm, act=act, norm_eps=norm_eps))
    stem.add_module("conv3", conv_norm_act(64, 192, 3, norm=norm, act=act, norm_eps=norm_eps))
    if lrn:
        stem.add_module("lrn2", nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))
    stem.add_module("maxpool2", nn.MaxPool2d(3, stride=2, ceil_mode=True))
    return stem


@register_stem("conv3x3")
def conv3x3(
    in_channels: int, *, out: int, norm: str = "batchnorm", act: str = "relu", norm_eps: float = 1e-5
) -> nn.Module:
    """One 3x3 conv-norm-act at stride 1, for small inputs such as 28x28 Fashion-MNIST."""
    return conv_norm_act(in_channels, out, 3, norm=norm, act=act, norm_eps=norm_eps)
