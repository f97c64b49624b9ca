"""The network's building blocks that need nothing but torch: the builder assembles the live
network from them, and an exported `.py` file carries their very source (`inspect.getsource`),
so the two cannot drift apart. Keep them free of the Spec, timm and the rest of the sandbox.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Inception(nn.Module):
    """The Inception module: branches side by side on the same input, concatenated on channels."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class ResidualInception(Inception):
    """Inception-ResNet's module: the branches concatenated, a 1x1 projection back to the input's
    width, scaled (0.1 to 0.3 in the paper keeps deep stacks stable), added to the input, then `act`."""

    def __init__(self, *branches: nn.Module, project: nn.Module, scale: float, act: nn.Module) -> None:
        super().__init__(*branches)
        self.project = project
        self.scale = scale
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.scale * self.project(super().forward(x)))


class Split(nn.Module):
    """A branch that splits: the trunk, then the parts side by side on its output, concatenated on
    channels (Inception-v3's Mixed_7b: a 1x1, then a 1x3 and a 3x1 on what it gives)."""

    def __init__(self, trunk: nn.Module, *parts: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk
        self.parts = nn.ModuleList(parts)

    def forward(self, x: Tensor) -> Tensor:
        x = self.trunk(x)
        return torch.cat([part(x) for part in self.parts], dim=1)


class Stage(nn.Module):
    """An optional downsample, then Inception modules in sequence."""

    def __init__(self, blocks: list[nn.Module], downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.downsample = downsample if downsample is not None else nn.Identity()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> Tensor:
        x = self.downsample(x)
        for block in self.blocks:
            x = block(x)
        return x


class Head(nn.Module):
    """Global average pool, dropout, linear classifier."""

    def __init__(self, channels: int, classes: int, dropout: float) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(self.pool(x).flatten(1)))


class ConvHead(nn.Module):
    """Network-in-Network's head: dropout, a 1x1 convolution to the classes, `act` (identity, or d2l's
    ReLU), global average pool; no linear layer, so each class has its own feature map."""

    def __init__(self, channels: int, classes: int, dropout: float, act: nn.Module | None = None) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.conv = nn.Conv2d(channels, classes, 1)
        self.act = act if act is not None else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.act(self.conv(self.dropout(x)))).flatten(1)


EXPORTED = (Inception, ResidualInception, Split, Stage, Head, ConvHead)  # what an exported file may carry, in order
ALWAYS_EXPORTED = (Inception, Stage, Head)  # carried by every file; the others where the network uses them
