"""Batched augmentation on the training device: random-resized-crop, padded crop, flip, RandAugment, mixup.

Every image transform takes a uint8 batch (N, C, H, W) and gives one of the same shape, without a
per-image Python loop: random-resized-crop draws a box per image (torchvision's rule: ten tries at
an area in `scale` and a log-uniform aspect in `ratio`, else a centre crop) and resamples every box
in one `torchvision.ops.roi_align` call, bilinear, to the input's size.

RandAugment is torchvision's `transforms.v2.RandAugment`, which draws its operations once per call
and applies them to the whole tensor it is given. Applied to a whole epoch at once, every image
would get the same operations; applied image by image, it would be a Python loop over the data.
So it runs on groups of `randaugment.group` consecutive images of the shuffled epoch (16 by
default): each group has its own draw. Each group's draw is seeded from the run's augmentation
generator (torchvision draws from the global CPU generator, which is forked around the call), so
the augmentation stream is one generator whose state a checkpoint saves, and dropout's global
stream is left untouched.

Mixup and cutmix are timm's `Mixup` (one mixing weight per batch; timm draws it from NumPy's
global generator, seeded from `train.seed` at the start of a run when mixing is on), with the
soft targets it makes scored by timm's `SoftTargetCrossEntropy`. Nothing here runs when its key is
off: the default recipe (crop 2, flip) costs what it did before these options existed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from timm.data import Mixup
from torch import Tensor
from torchvision.ops import roi_align
from torchvision.transforms import v2

from sandbox.errors import SpecError
from sandbox.spec.recipe import Augment, ResizedCrop
from sandbox.train.data import augment as pad_crop_flip

TRIES = 10  # torchvision's RandomResizedCrop tries this many boxes before it falls back to a centre crop
CHUNK = 512  # images resampled per roi_align call: bounds the float copy (512x3x224x224 is 308 MB)


class Augmenter:
    """The recipe's image transforms, drawing from `generator` (on the images' device)."""

    def __init__(self, config: Augment, generator: torch.Generator) -> None:
        self.config = config
        self.generator = generator
        ra = config.randaugment
        self.randaugment = None if ra is None else v2.RandAugment(num_ops=ra.ops, magnitude=ra.magnitude)

    def __call__(self, images: Tensor) -> Tensor:
        config = self.config
        if config.resized_crop is not None:
            images = resized_crop(images, config.resized_crop, self.generator)
        if config.crop > 0 or config.flip:
            images = pad_crop_flip(images, crop=config.crop, flip=config.flip, generator=self.generator)
        if self.randaugment is not None:
            images = self._randaugment(images)
        return images

    def _randaugment(self, images: Tensor) -> Tensor:
        assert self.config.randaugment is not None and self.randaugment is not None
        groups = images.split(self.config.randaugment.group)
        seeds = torch.randint(2**62, (len(groups),), generator=self.generator, device=images.device).tolist()
        out = []
        with torch.random.fork_rng(devices=[]):  # torchvision draws from the CPU's global generator
            for seed, group in zip(seeds, groups, strict=True):
                torch.default_generator.manual_seed(seed)
                out.append(self.randaugment(group))
        return torch.cat(out)


def resized_crop(images: Tensor, config: ResizedCrop, generator: torch.Generator) -> Tensor:
    """torchvision's RandomResizedCrop for a whole batch: one box per image, one resampling call per chunk."""
    n, _, height, width = images.shape
    boxes = crop_boxes(n, height, width, config, generator, images.device)
    index = torch.arange(n, device=images.device, dtype=boxes.dtype).unsqueeze(1)
    rois = torch.cat([index, boxes], dim=1)
    out = torch.empty_like(images)
    for start in range(0, n, CHUNK):
        chunk = slice(start, start + CHUNK)
        rois_here = rois[chunk].clone()
        rois_here[:, 0] -= start
        resampled = roi_align(images[chunk].float(), rois_here, (height, width), sampling_ratio=1, aligned=True)
        out[chunk] = resampled.round_().clamp_(0, 255).to(images.dtype)
    return out


def crop_boxes(
    n: int, height: int, width: int, config: ResizedCrop, generator: torch.Generator, device: torch.device
) -> Tensor:
    """(n, 4) boxes x1, y1, x2, y2 in pixels, drawn as torchvision's RandomResizedCrop.get_params draws one."""
    area = height * width

    def uniform(low: float, high: float, shape: tuple[int, ...]) -> Tensor:
        return torch.rand(shape, generator=generator, device=device) * (high - low) + low

    target = area * uniform(*config.scale, (n, TRIES))
    aspect = uniform(math.log(config.ratio[0]), math.log(config.ratio[1]), (n, TRIES)).exp()
    w, h = (target * aspect).sqrt(), (target / aspect).sqrt()
    fits = (w <= width) & (h <= height)
    first = fits.float().argmax(1, keepdim=True)  # the first try that fits, as torchvision takes it
    w, h, found = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1), fits.any(1)
    # No try fits: the whole image, cut to the nearest aspect in `ratio` (torchvision's fallback).
    in_ratio = width / height
    fallback_w, fallback_h = float(width), float(height)
    if in_ratio < config.ratio[0]:
        fallback_h = width / config.ratio[0]
    elif in_ratio > config.ratio[1]:
        fallback_w = height * config.ratio[1]
    w = torch.where(found, w, torch.full_like(w, fallback_w))
    h = torch.where(found, h, torch.full_like(h, fallback_h))
    x1 = torch.rand(n, generator=generator, device=device) * (width - w)
    y1 = torch.rand(n, generator=generator, device=device) * (height - h)
    x1 = torch.where(found, x1, (width - w) / 2)
    y1 = torch.where(found, y1, (height - h) / 2)
    return torch.stack([x1, y1, x1 + w, y1 + h], dim=1)


def mixer(config: Augment, *, classes: int, label_smoothing: float, batch: int, seed: int) -> Mixup | None:
    """timm's Mixup for the recipe, None when neither mixup nor cutmix is on.

    Seeds NumPy's global generator, which timm draws from, so a run is reproducible from `train.seed`."""
    if not config.mixes:
        return None
    if batch % 2:
        raise SpecError(
            "train.batch_size", f"mixup and cutmix mix a batch with its reverse: needs an even size, got {batch}"
        )
    np.random.seed(seed % 2**32)
    return Mixup(
        mixup_alpha=config.mixup,
        cutmix_alpha=config.cutmix,
        prob=config.mix_prob,
        switch_prob=config.switch_prob,
        mode="batch",
        label_smoothing=label_smoothing,
        num_classes=classes,
    )
