"""Built-in stems: the layers before the first Inception stage."""

from __future__ import annotations

from typing import Any

from torch import nn

from sandbox import register_stem
from sandbox.layers import conv_norm_act
from sandbox.plugins.branches import chain


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


@register_stem("bn_inception")
def bn_inception(in_channels: int, *, norm: str = "batchnorm", act: str = "relu", norm_eps: float = 1e-5) -> nn.Module:
    """BN-Inception's stem (Ioffe & Szegedy, 2015, Figure 5) for 224x224 inputs: GoogLeNet's layers
    (7x7/2 64, pool, 1x1 64, 3x3 192, pool; 224 → 28), with batch norm in place of the local response
    normalizations, under the same names."""
    return googlenet(in_channels, norm=norm, act=act, norm_eps=norm_eps)


def _valid(in_channels: int, out: int, kernel: int, stride: int, style: dict[str, Any]) -> nn.Module:
    """An unpadded ("valid") conv-norm-act, the stems' convolution in Inception-v3 and v4."""
    return conv_norm_act(in_channels, out, kernel, stride=stride, padding=0, **style)


def _v4_layers(in_channels: int, style: dict[str, Any]) -> nn.Sequential:
    stem = nn.Sequential()
    stem.add_module("conv1a", _valid(in_channels, 32, 3, 2, style))
    stem.add_module("conv2a", _valid(32, 32, 3, 1, style))
    stem.add_module("conv2b", conv_norm_act(32, 64, 3, padding=1, **style))
    return stem


@register_stem("inception_v3")
def inception_v3(in_channels: int, *, norm: str = "batchnorm", act: str = "relu", norm_eps: float = 1e-5) -> nn.Module:
    """Inception-v3's stem for 299x299 inputs (torchvision's Conv2d_1a_3x3 to maxpool2), which
    Inception-ResNet-v2 shares: 3x3/2 32, 3x3 32, 3x3 64 (padded), 3x3/2 max pool, 1x1 80, 3x3 192,
    3x3/2 max pool, all unpadded but the third; 299 → 149 → 147 → 73 → 71 → 35, 192 channels.

    Layers are named `conv1a`, `conv2a`, `conv2b`, `pool3a`, `conv3b`, `conv4a`, `pool5a` after the
    papers' layer names, which both libraries' names contain, so weights map by a short key map.
    """
    style: dict[str, Any] = {"norm": norm, "act": act, "norm_eps": norm_eps}
    stem = _v4_layers(in_channels, style)
    stem.add_module("pool3a", nn.MaxPool2d(3, stride=2))
    stem.add_module("conv3b", conv_norm_act(64, 80, 1, **style))
    stem.add_module("conv4a", _valid(80, 192, 3, 1, style))
    stem.add_module("pool5a", nn.MaxPool2d(3, stride=2))
    return stem


@register_stem("inception_v4")
def inception_v4(in_channels: int, *, norm: str = "batchnorm", act: str = "relu", norm_eps: float = 1e-5) -> nn.Module:
    """Inception-v4's plain stem for 299x299 inputs: 3x3/2 32, 3x3 32 (both unpadded), 3x3 64 (padded);
    299 → 149 → 147, 64 channels. The rest of the paper's stem (Mixed 3a, 4a, 5a: a pool beside a
    strided conv, two branches of unpadded convolutions, a strided conv beside a pool) is written as
    modules in inception_v4.yaml, so a search can change it branch by branch."""
    return _v4_layers(in_channels, {"norm": norm, "act": act, "norm_eps": norm_eps})


register_stem("chain")(chain)  # convolutions in sequence as a stem: Network-in-Network's first block (nin.yaml)
