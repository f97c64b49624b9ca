"""The reference networks the shipped specs reproduce, built from their libraries (or, for d2l's
NiN, from its few lines), and the helpers that compare a sandbox network with one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from tests.paths import SEARCH_SPACES


def d2l_nin(classes: int = 10) -> nn.Sequential:
    """d2l.ai's Network in Network ("Network in Network (NiN)", the PyTorch version), with its sizes
    written out where d2l's LazyConv2d infers them."""

    def block(in_channels: int, out: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(in_channels, out, kernel, stride, padding), nn.ReLU(),
            nn.Conv2d(out, out, 1), nn.ReLU(),
            nn.Conv2d(out, out, 1), nn.ReLU(),
        )  # fmt: skip

    return nn.Sequential(
        block(1, 96, 11, 4, 0), nn.MaxPool2d(3, stride=2),
        block(96, 256, 5, 1, 2), nn.MaxPool2d(3, stride=2),
        block(256, 384, 3, 1, 1), nn.MaxPool2d(3, stride=2),
        nn.Dropout(0.5),
        block(384, classes, 3, 1, 1),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
    )  # fmt: skip


@dataclass(frozen=True)
class Reference:
    spec: str  # the shipped spec's file name
    library: str  # how its weights load: build(spec, torchvision_weights=...) or timm_weights=..., or by order
    make: Callable[[], nn.Module]
    params: int  # with aux heads, as the library counts them

    @property
    def path(self) -> Path:
        return SEARCH_SPACES / self.spec


REFERENCES = {
    "inception_v3": Reference(
        "inception_v3.yaml",
        "torchvision",
        lambda: torchvision.models.inception_v3(aux_logits=True, init_weights=False),
        27_161_264,
    ),
    "inception_v4": Reference("inception_v4.yaml", "timm", lambda: timm.create_model("inception_v4"), 42_679_816),
    "inception_resnet_v2": Reference(
        "inception_resnet_v2.yaml", "timm", lambda: timm.create_model("inception_resnet_v2"), 55_843_464
    ),
    "nin": Reference("nin.yaml", "order", d2l_nin, 1_992_166),
}


def redraw(model: nn.Module, seed: int = 0) -> None:
    """Redraw weights and batch-norm statistics so that outputs depend on every layer.

    With the libraries' own init (torchvision's std 0.01, say) the signal vanishes with depth: the
    logits barely depend on the input and the subnormal activations make the forward pass 20x
    slower, so a parity check on those weights would prove nothing.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
                if module.bias is not None:
                    module.bias.normal_(0, 0.01, generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0, 0.1, generator=generator)
            elif isinstance(module, nn.Linear):
                module.weight.normal_(0, module.in_features**-0.5, generator=generator)


def forward_flops(model: nn.Module, size: int, channels: int = 3) -> int:
    """Per-image forward FLOPs as sandbox.model.flops counts them: FlopCounterMode, eval mode, meta device."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.empty(1, channels, size, size, device="meta"))
    return counter.get_total_flops()


def copy_in_order(source: nn.Module, target: nn.Module) -> None:
    """Load `source`'s tensors into `target` by their order, for a reference with no key map (d2l's
    NiN is one nn.Sequential); every pair must agree in shape."""
    pairs = list(zip(source.state_dict().values(), target.state_dict().items(), strict=True))
    assert all(value.shape == tensor.shape for value, (_, tensor) in pairs)
    target.load_state_dict({key: value for value, (key, _) in pairs})
