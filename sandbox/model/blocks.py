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


EXPORTED = (Inception, Stage, Head)  # the classes an exported file carries, in order
