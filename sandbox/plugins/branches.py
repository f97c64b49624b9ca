"""The built-in Inception branches.

Names are part of the public interface: specs refer to them. Every branch takes `norm` and `act`
(batch norm + ReLU by default; `norm: none` gives the 2014 network without batch norm) and a
`stride`, which its last spatial layer applies: at stride 1 a branch keeps height and width, at
stride 2 it gives `ceil(size / 2)`, so the branches of a reduction module (`stride: 2` on the
module) agree. `padding` (where taken) overrides the padding of that layer: 0 is the "valid"
convolution or pool of Inception-v3/v4's reductions, `(size - k) // stride + 1`.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from sandbox import register_branch
from sandbox.layers import conv_norm_act

Pool = Literal["max", "avg"]


def _pair(value: int | list[int], key: str) -> int | tuple[int, int]:
    """A spec's kernel or padding, k or [height, width], as conv_norm_act takes it."""
    if isinstance(value, list) and len(value) != 2:
        raise ValueError(f"{key} must be k or [height, width], got a list of {len(value)}")
    return (value[0], value[1]) if isinstance(value, list) else value


def _pool(kind: Pool, kernel: int, stride: int, padding: int | None, count_pad: bool = True) -> nn.Module:
    """A pool that gives the size a conv of the same kernel and stride gives (the same padding).

    At stride 1 it rounds up (torchvision's GoogLeNet pool, so its weights and output line up).
    `count_pad` (average pools only) counts the padding as zeros in the average, as Inception-v3
    does; Inception-v4 and Inception-ResNet-v2 average over the real pixels only (False).
    """
    pad = (kernel - 1) // 2 if padding is None else padding
    if kind == "max":
        return nn.MaxPool2d(kernel, stride=stride, padding=pad, ceil_mode=stride == 1)
    return nn.AvgPool2d(kernel, stride=stride, padding=pad, ceil_mode=stride == 1, count_include_pad=count_pad)


@register_branch("conv1x1")
def conv1x1(
    in_channels: int,
    *,
    out: int,
    stride: int = 1,
    norm: str = "batchnorm",
    act: str = "relu",
    norm_eps: float = 1e-5,
) -> nn.Module:
    """A 1x1 convolution: the module's pointwise path."""
    return conv_norm_act(in_channels, out, 1, stride=stride, norm=norm, act=act, norm_eps=norm_eps)


@register_branch("conv")
def conv(
    in_channels: int,
    *,
    out: int,
    kernel: int | list[int] = 3,
    stride: int = 1,
    padding: int | list[int] | None = None,
    norm: str = "batchnorm",
    act: str = "relu",
    norm_eps: float = 1e-5,
) -> nn.Module:
    """One convolution of any kernel and padding, [1, 3] or [3, 1] too: a part of a split branch, or
    Inception-v3's 3x3/2 reduction."""
    pad = None if padding is None else _pair(padding, "padding")
    kernel_size = _pair(kernel, "kernel")
    return conv_norm_act(
        in_channels, out, kernel_size, stride=stride, padding=pad, norm=norm, act=act, norm_eps=norm_eps
    )


def _reduced(
    in_channels: int,
    reduce: int,
    widths: tuple[int, ...],
    kernels: tuple[int | tuple[int, int], ...],
    stride: int,
    padding: int | None,
    style: dict[str, Any],
) -> nn.Sequential:
    """1x1 reduction to `reduce` channels, then one convolution per kernel to its width; the last
    one takes the stride and the padding."""
    layers = [conv_norm_act(in_channels, reduce, 1, **style)]
    width = reduce
    for i, (kernel, out) in enumerate(zip(kernels, widths, strict=True)):
        last: dict[str, Any] = {"stride": stride, "padding": padding} if i == len(kernels) - 1 else {}
        layers.append(conv_norm_act(width, out, kernel, **last, **style))
        width = out
    return nn.Sequential(*layers)


@register_branch("conv3x3")
def conv3x3(
    in_channels: int,
    *,
    out: int,
    reduce: int,
    stride: int = 1,
    padding: int | None = None,
    norm: str = "batchnorm",
    act: str = "relu",
    norm_eps: float = 1e-5,
) -> nn.Module:
    """1x1 reduce, then 3x3."""
    style: dict[str, Any] = {"norm": norm, "act": act, "norm_eps": norm_eps}
    return _reduced(in_channels, reduce, (out,), (3,), stride, padding, style)


@register_branch("conv5x5")
def conv5x5(
    in_channels: int,
    *,
    out: int,
    reduce: int,
    stride: int = 1,
    padding: int | None = None,
    norm: str = "batchnorm",
    act: str = "relu",
    norm_eps: float = 1e-5,
) -> nn.Module:
    """1x1 reduce, then a true 5x5 (the 2014 paper's branch)."""
    style: dict[str, Any] = {"norm": norm, "act": act, "norm_eps": norm_eps}
    return _reduced(in_channels, reduce, (out,), (5,), stride, padding, style)


@register_branch("double3x3")
def double3x3(
    in_channels: int,
    *,
    out: int,
    reduce: int,
    stride: int = 1,
    padding: int | None = None,
    norm: str = "batchnorm",
    act: str = "relu",
    norm_eps: float = 1e-5,
) -> nn.Module:
    """1x1 reduce, then two 3x3: the factorized 5x5 of Inception v2/v3 (same field, fewer FLOPs)."""
    style: dict[str, Any] = {"norm": norm, "act": act, "norm_eps": norm_eps}
    return _reduced(in_channels, reduce, (out, out), (3, 3), stride, padding, style)


@register_branch("factorized")
def factorized(
    in_channels: int,
    *,
    out: int,
    reduce: int,
    n: int = 7,
    stride: int = 1,
    padding: int | None = None,
    norm: str = "batchnorm",
    act: str = "relu",
    norm_eps: float = 1e-5,
) -> nn.Module:
    """1x1 reduce, 1xn at the reduced width, then nx1 to `out`: an nxn field for 2n weights per
    channel pair instead of n², as in Inception-v3's 17x17 modules (n = 7)."""
    style: dict[str, Any] = {"norm": norm, "act": act, "norm_eps": norm_eps}
    return _reduced(in_channels, reduce, (reduce, out), ((1, n), (n, 1)), stride, padding, style)


@register_branch("chain")
def chain(
    in_channels: int,
    *,
    widths: list[int],
    kernels: list[int | list[int]],
    stride: int = 1,
    padding: int | list[int] | None = None,
    norm: str = "batchnorm",
    act: str = "relu",
    norm_eps: float = 1e-5,
) -> nn.Module:
    """Convolutions in sequence, one per kernel, to the widths in `widths`: any stack the other
    branches do not name, such as Inception-v3's 1x1, 7x1, 1x7, 7x1, 1x7 (`kernels: [1, [7, 1], [1, 7],
    [7, 1], [1, 7]]`) or a Network-in-Network block (`kernels: [11, 1, 1]`). The stride and the padding
    go to the last layer with a kernel larger than 1x1 (the last one if none is)."""
    if len(widths) != len(kernels) or not widths:
        raise ValueError(f"widths and kernels must be lists of one length, got {len(widths)} and {len(kernels)}")
    if min(widths) < 1:
        raise ValueError(f"widths must be positive numbers of channels, got {widths}")
    sizes = [_pair(kernel, f"kernels[{i}]") for i, kernel in enumerate(kernels)]
    spatial = [i for i, kernel in enumerate(sizes) if kernel not in (1, (1, 1))]
    last = spatial[-1] if spatial else len(sizes) - 1
    pad = None if padding is None else _pair(padding, "padding")
    style: dict[str, Any] = {"norm": norm, "act": act, "norm_eps": norm_eps}
    layers = []
    for i, (kernel, out) in enumerate(zip(sizes, widths, strict=True)):
        where: dict[str, Any] = {"stride": stride, "padding": pad} if i == last else {}
        layers.append(conv_norm_act(in_channels if i == 0 else widths[i - 1], out, kernel, **where, **style))
    return nn.Sequential(*layers)


@register_branch("separable")
def separable(
    in_channels: int,
    *,
    out: int,
    kernel: int = 3,
    stride: int = 1,
    padding: int | None = None,
    norm: str = "batchnorm",
    act: str = "relu",
    norm_eps: float = 1e-5,
) -> nn.Module:
    """Depthwise-separable: a k x k convolution per channel (groups = channels), then a 1x1 to `out`,
    the "extreme Inception" of Xception; k² + out weights per input channel instead of k² · out."""
    style: dict[str, Any] = {"norm": norm, "act": act, "norm_eps": norm_eps}
    return nn.Sequential(
        conv_norm_act(in_channels, in_channels, kernel, stride=stride, padding=padding, groups=in_channels, **style),
        conv_norm_act(in_channels, out, 1, **style),
    )


@register_branch("pool")
def pool(
    in_channels: int,
    *,
    kind: Pool = "max",
    kernel: int = 3,
    stride: int = 1,
    padding: int | None = None,
    count_pad: bool = True,
) -> nn.Module:
    """A pass-through pool with no projection: its width is the module's input width (Inception-v3's
    Mixed_6a keeps the input's 288 channels beside its strided convolutions). `count_pad` as in
    `avg_pool_proj`, for `kind: avg`."""
    return _pool(kind, kernel, stride, padding, count_pad)


def _pooled_projection(
    kind: Pool,
    in_channels: int,
    out: int,
    stride: int,
    padding: int | None,
    style: dict[str, Any],
    count_pad: bool = True,
) -> nn.Sequential:
    return nn.Sequential(_pool(kind, 3, stride, padding, count_pad), conv_norm_act(in_channels, out, 1, **style))


@register_branch("pool_proj")
def pool_proj(
    in_channels: int,
    *,
    out: int,
    stride: int = 1,
    padding: int | None = None,
    norm: str = "batchnorm",
    act: str = "relu",
    norm_eps: float = 1e-5,
) -> nn.Module:
    """3x3 max-pool, then a 1x1 projection (GoogLeNet's pool branch)."""
    style: dict[str, Any] = {"norm": norm, "act": act, "norm_eps": norm_eps}
    return _pooled_projection("max", in_channels, out, stride, padding, style)


@register_branch("avg_pool_proj")
def avg_pool_proj(
    in_channels: int,
    *,
    out: int,
    stride: int = 1,
    padding: int | None = None,
    count_pad: bool = True,
    norm: str = "batchnorm",
    act: str = "relu",
    norm_eps: float = 1e-5,
) -> nn.Module:
    """3x3 average pool, then a 1x1 projection. `count_pad: true` counts the padding as zeros in
    the average (Inception-v3, BN-Inception); false averages the real pixels only (Inception-v4)."""
    style: dict[str, Any] = {"norm": norm, "act": act, "norm_eps": norm_eps}
    return _pooled_projection("avg", in_channels, out, stride, padding, style, count_pad)
