"""The datasets a spec can name in `data.dataset`: one table, so adding one is one entry here.

Each entry gives the torchvision class that reads and downloads its release (None: the sandbox
reads it itself, as an image folder), its name in messages, its training set's own per-channel mean
and std (what `normalize:` left unset means), and whether its images are drawn light on a black
ground (`predict --invert auto` inverts a dark-on-light image only for such a network).
`sandbox.train.datasets` derives where each release's files lie from its torchvision class.

Standard library only: a spec is checked against these names without importing torchvision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)
FULL: Final = "fashion-mnist"
SAMPLE: Final = "fashion-mnist-sample"  # the full release's format, a subset shipped in the package
IMAGE_FOLDER: Final = "image-folder"


@dataclass(frozen=True)
class Dataset:
    label: str  # in messages
    torchvision: str | None  # the class in torchvision.datasets that reads the release
    mean: tuple[float, ...] = ()  # per channel in [0, 1], as published for the release (CIFAR's std per pixel)
    std: tuple[float, ...] = ()
    light_on_black: bool = False


DATASETS: dict[str, Dataset] = {
    FULL: Dataset("Fashion-MNIST", "FashionMNIST", FASHION_MNIST_MEAN, FASHION_MNIST_STD, light_on_black=True),
    SAMPLE: Dataset("Fashion-MNIST", "FashionMNIST", FASHION_MNIST_MEAN, FASHION_MNIST_STD, light_on_black=True),
    "mnist": Dataset("MNIST", "MNIST", (0.1307,), (0.3081,), light_on_black=True),
    "cifar10": Dataset("CIFAR-10", "CIFAR10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": Dataset("CIFAR-100", "CIFAR100", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    IMAGE_FOLDER: Dataset("image folder", None),
}
