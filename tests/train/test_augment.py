"""Batched augmentation: random-resized-crop boxes and resampling, RandAugment groups, mixup, the default recipe."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import sandbox.train.augment
from sandbox.errors import SpecError
from sandbox.spec.recipe import Augment, RandAugment, ResizedCrop, train_config
from sandbox.train.augment import Augmenter, crop_boxes, mixer, resized_crop
from sandbox.train.data import augment as pad_crop_flip


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 64, channels: int = 3, size: int = 24) -> torch.Tensor:
    return torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=generator(1))


def test_augment_keys_parse_and_name_their_key() -> None:
    config = train_config({"augment": {"resized_crop": True, "randaugment": {"ops": 1}, "cutmix": 1.0}}).augment
    assert config.resized_crop == ResizedCrop() and config.randaugment == RandAugment(ops=1) and config.mixes
    assert train_config({"augment": {"resized_crop": False}}).augment.resized_crop is None
    for raw, path in [
        ({"resized_crop": {"scale": [0.5, 0.2]}}, "train.augment.resized_crop.scale"),
        ({"resized_crop": {"ratio": [0, 1]}}, "train.augment.resized_crop.ratio"),
        ({"resized_crop": {"size": 3}}, "train.augment.resized_crop.size"),
        ({"randaugment": "strong"}, "train.augment.randaugment"),
        ({"randaugment": {"group": 0}}, "train.augment.randaugment.group"),
        ({"mixup": -1}, "train.augment.mixup"),
        ({"switch_prob": 1.5}, "train.augment.switch_prob"),
    ]:
        with pytest.raises(SpecError) as err:
            train_config({"augment": raw})
        assert err.value.path == path


def test_crop_boxes_follow_torchvisions_rule() -> None:
    config = ResizedCrop(scale=(0.2, 0.6), ratio=(0.5, 2.0))
    boxes = crop_boxes(2000, 30, 40, config, generator(), torch.device("cpu"))
    x1, y1, x2, y2 = boxes.unbind(1)
    w, h = x2 - x1, y2 - y1
    assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= 40 + 1e-4).all() and (y2 <= 30 + 1e-4).all()
    area = w * h / (30 * 40)
    assert area.min() >= 0.2 - 1e-4 and area.max() <= 0.6 + 1e-4
    assert (w / h).min() >= 0.5 - 1e-4 and (w / h).max() <= 2.0 + 1e-4
    assert len(set(x1.tolist())) > 1900  # every image its own box
    # An impossible draw (all of the area at aspect 4 in a square) falls back to a centre crop at the nearest aspect.
    wide = crop_boxes(3, 20, 20, ResizedCrop(scale=(1.0, 1.0), ratio=(4.0, 4.0)), generator(), torch.device("cpu"))
    assert torch.allclose(wide, torch.tensor([[0.0, 7.5, 20.0, 12.5]] * 3))


def test_resized_crop_is_one_batched_resampling(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = sandbox.train.augment.roi_align

    def counting(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(len(x))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(sandbox.train.augment, "roi_align", counting)
    batch = images(100)
    out = resized_crop(batch, ResizedCrop(), generator())
    assert calls == [100] and out.shape == batch.shape and out.dtype == torch.uint8
    assert torch.equal(out, resized_crop(batch, ResizedCrop(), generator()))  # the generator decides it all
    whole = resized_crop(batch, ResizedCrop(scale=(1.0, 1.0), ratio=(1.0, 1.0)), generator())
    assert torch.equal(whole, batch)  # the whole square image, resampled to its own size, is itself


def test_resized_crop_zooms_into_the_box() -> None:
    """A left-half box of an image dark on the left and bright on the right comes out all dark."""
    batch = torch.zeros(4, 1, 16, 16, dtype=torch.uint8)
    batch[..., 8:] = 200
    boxes = torch.tensor([[float(i), 0.0, 0.0, 8.0, 16.0] for i in range(4)])
    out = sandbox.train.augment.roi_align(batch.float(), boxes, (16, 16), sampling_ratio=1, aligned=True)
    assert out[..., :14].max() == 0 and out.shape == (4, 1, 16, 16)


def test_randaugment_draws_once_per_group_from_the_runs_generator() -> None:
    same = images(1, channels=3, size=20).expand(64, -1, -1, -1).contiguous()
    config = Augment(crop=0, flip=False, randaugment=RandAugment(ops=2, magnitude=20, group=16))
    before = torch.get_rng_state()
    out = Augmenter(config, generator()).__call__(same)
    assert torch.equal(torch.get_rng_state(), before)  # dropout's global stream untouched
    groups = out.view(4, 16, *out.shape[1:])
    assert all(torch.equal(group[0], image) for group in groups for image in group)  # one draw per group
    assert len({group[0].numpy().tobytes() for group in groups}) > 1  # groups draw differently
    assert torch.equal(out, Augmenter(config, generator()).__call__(same))
    assert not torch.equal(out, Augmenter(config, generator(5)).__call__(same))


def test_randaugment_takes_grayscale() -> None:
    config = Augment(crop=0, flip=False, randaugment=RandAugment(group=4))
    out = Augmenter(config, generator())(images(32, channels=1, size=28))
    assert out.shape == (32, 1, 28, 28) and out.dtype == torch.uint8


def test_the_default_recipe_draws_as_before() -> None:
    """crop 2 and flip, and nothing else: the same images as data.augment gives, so old figures stand."""
    batch = images(50, channels=1, size=28)
    expected = pad_crop_flip(batch, crop=2, flip=True, generator=generator(3))
    assert torch.equal(Augmenter(Augment(), generator(3))(batch), expected)
    assert torch.equal(Augmenter(Augment(crop=0, flip=False), generator(3))(batch), batch)


def test_mixer_makes_soft_targets_and_wants_an_even_batch() -> None:
    assert mixer(Augment(), classes=10, label_smoothing=0.1, batch=32, seed=0) is None
    mix = mixer(Augment(mixup=0.4, cutmix=1.0), classes=10, label_smoothing=0.1, batch=32, seed=0)
    assert mix is not None
    x, y = torch.rand(32, 1, 28, 28), torch.arange(32) % 10
    mixed, targets = mix(x.clone(), y)
    assert targets.shape == (32, 10) and torch.allclose(targets.sum(1), torch.ones(32))
    assert not torch.equal(mixed, x)
    mixer(Augment(mixup=0.4), classes=10, label_smoothing=0.1, batch=32, seed=7)
    drawn = np.random.rand()
    np.random.seed(7)
    assert np.random.rand() == drawn  # timm's draws come from NumPy, seeded from train.seed
    with pytest.raises(SpecError) as err:
        mixer(Augment(mixup=0.2), classes=10, label_smoothing=0.0, batch=31, seed=0)
    assert err.value.path == "train.batch_size"
