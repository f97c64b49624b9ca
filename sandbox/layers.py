"""The layers plugin authors build with: `from sandbox.layers import conv_norm_act` (see `sandbox.model.layers`)."""

from sandbox.model.layers import conv_norm_act

__all__ = ["conv_norm_act"]
