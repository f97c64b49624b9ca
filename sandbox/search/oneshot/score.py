"""Scoring subnets of a trained supernet with inherited weights: a cheap screen, then a full score.

A subnet's batch norms are measured for it alone before it is scored (the shared statistics fit no
subnet): reset, then a cumulative average over fixed, unaugmented training batches in train mode. Its
score is its accuracy on the validation split the search chooses by, never the test split.

Thousands of subnets are scored in minutes on a CPU because most need only the screen: batch norms
measured on the first `screen_calibration` of those batches, accuracy on `screen_images` validation
images drawn once (seeded, so every subnet sees the same ones). The screen's best, the `finalists`,
are then scored in full: all `calibration` batches, the whole validation split. What that costs in
rank is measured in bench/README.md ("Weight-sharing search").
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn

from sandbox.search.oneshot.layout import Subnet
from sandbox.search.oneshot.supernet import Supernet
from sandbox.spec.one_shot import OneShotConfig
from sandbox.train.data import Data, Split, to_float
from sandbox.train.loop import accuracy


class Scorer:
    """Measures and scores subnets of `net` on `data`, as `settings` ask, with the training batch size."""

    def __init__(
        self, net: Supernet, data: Data, settings: OneShotConfig, *, batch: int, seed: int, channels_last: bool
    ) -> None:
        if channels_last:  # as the supernet trained: on a CPU, a channels-first max pool costs 10x
            net.to(memory_format=torch.channels_last)
        self.net, self.data, self.batch, self.channels_last = net, data, batch, channels_last
        self.batches = calibration_batches(data, settings.calibration, batch, seed, channels_last=channels_last)
        self.screen_batches = self.batches[: settings.screen_calibration]
        self.screen_split = _sample(data.val, settings.screen_images, seed)

    @property
    def screens(self) -> bool:
        """Whether the screen is cheaper than the full score (else every subnet is scored in full)."""
        return len(self.screen_split) < len(self.data.val) or len(self.screen_batches) < len(self.batches)

    def calibrate(self, subnet: Subnet) -> None:
        """The subnet's batch norms measured on every calibration batch (what its score and export use)."""
        recalibrate(self.net, subnet, self.batches)

    def screen(self, subnet: Subnet) -> float:
        """The cheap score every drawn subnet in the band gets."""
        recalibrate(self.net, subnet, self.screen_batches)
        return self._accuracy(subnet, self.screen_split)

    def score(self, subnet: Subnet) -> float:
        """The full score: all calibration batches, the whole validation split."""
        self.calibrate(subnet)
        return self._accuracy(subnet, self.data.val)

    def _accuracy(self, subnet: Subnet, split: Split) -> float:
        return accuracy(SubnetView(self.net, subnet), split, batch=self.batch, channels_last=self.channels_last)


def _sample(split: Split, images: int, seed: int) -> Split:
    """`images` of the split drawn without replacement (all of it when it has no more): a split kept in
    class order must not give the screen one class."""
    if images >= len(split):
        return split
    index = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:images].sort().values
    return replace(
        split, images=split.images[index.to(split.images.device)], labels=split.labels[index.to(split.labels.device)]
    )


def calibration_batches(data: Data, batches: int, batch: int, seed: int, *, channels_last: bool) -> list[Tensor]:
    """The fixed training images (unaugmented) every subnet measures its batch norms on."""
    generator = torch.Generator(device=data.train.device).manual_seed(seed)
    order = torch.randperm(len(data.train), device=data.train.device, generator=generator)[: batches * batch]
    return [to_float(images, channels_last=channels_last) for images, _ in data.train.batches(order, batch)]


@torch.no_grad()
def recalibrate(net: Supernet, subnet: Subnet, batches: list[Tensor]) -> None:
    """Batch-norm statistics measured for `subnet` alone: reset, then a cumulative average
    (momentum None) over `batches` in train mode."""
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()  # the wide statistics, whose slices the subnet's norms read
    kept = net.bn_momentum
    net.bn_momentum = None
    for norm in norms:
        norm.momentum = None  # the separate modules' own norms
    try:
        net.train()
        for x in batches:
            net(x, subnet)
    finally:
        net.bn_momentum = kept
        for norm in norms:
            norm.momentum = kept
        net.eval()


class SubnetView(nn.Module):
    """One subnet of the supernet as a plain module, so the trainer's evaluation runs it."""

    def __init__(self, net: Supernet, subnet: Subnet) -> None:
        super().__init__()
        self.net, self.subnet = net, subnet

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x, self.subnet)
