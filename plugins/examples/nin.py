"""A Network-in-Network stem (Lin et al., 2013): one convolution, then two 1x1 convolutions.

Use it from a spec with `plugins: [path/to/nin.py]` and `stem: {type: nin, out: 64}`.
"""

from torch import nn

from sandbox import register_stem
from sandbox.layers import conv_norm_act


@register_stem("nin")
def nin(in_channels: int, *, out: int, kernel: int = 3, norm: str = "batchnorm", act: str = "relu") -> nn.Module:
    """The mlpconv block: a k x k conv followed by two 1x1 convs, all at stride 1."""
    return nn.Sequential(
        conv_norm_act(in_channels, out, kernel, norm=norm, act=act),
        conv_norm_act(out, out, 1, norm=norm, act=act),
        conv_norm_act(out, out, 1, norm=norm, act=act),
    )
