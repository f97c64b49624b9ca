"""The spec's `train:` and `data:` sections as typed dataclasses, checked by `sandbox.spec.checks`.

Each field's annotation is its schema: the type, and in `Annotated[...]` its bounds, so an error
names `train.<key>` or `data.<key>` and there is no second list of rules to keep in step.

The `train:` defaults are the ones `search_spaces/fmnist_baseline.yaml` was tuned with
(bench/README.md): on the 5,699-image sample they take a ~30 MFLOP network past 82% test
accuracy in 5 epochs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from sandbox.errors import SpecError
from sandbox.spec.checks import Parse, above, at_least, parse_section, replace_checked, within

Dataset = Literal["fashion-mnist", "fashion-mnist-sample"]
FULL, SAMPLE = DATASETS = get_args(Dataset)
Count = Annotated[int, at_least(1)]
NonNegative = Annotated[float, at_least(0)]
Fraction = Annotated[float, within(0, 1)]


@dataclass(frozen=True)
class Augment:
    crop: Annotated[int, at_least(0)] = 2  # zero-pad by this many pixels, then crop back at a random offset
    flip: bool = True  # random horizontal flip


def _augment(value: Any, path: str) -> Augment:
    """`augment: false` (or empty) turns augmentation off; a mapping sets its keys."""
    if value is False or value is None:
        return Augment(crop=0, flip=False)
    if not isinstance(value, Mapping):
        raise SpecError(path, f"expected a mapping like {{crop: 2, flip: true}} or false, got {value!r}")
    return parse_section(Augment, value, path)


def _optimizer(value: Any, path: str) -> str:
    from timm.optim import list_optimizers

    if not isinstance(value, str) or value.lower() not in list_optimizers():
        raise SpecError(path, f"unknown optimizer {value!r} (timm's, e.g. sgd, momentum, adamw, lamb, lion)")
    return value.lower()


@dataclass(frozen=True)
class TrainConfig:
    epochs: Count = 15
    batch_size: Count = 128
    optimizer: Annotated[str, Parse(_optimizer)] = "sgd"  # any name timm's create_optimizer_v2 knows
    lr: Annotated[float, above(0)] = 0.1
    momentum: Fraction = 0.9
    weight_decay: NonNegative = 5e-4
    # any name timm.scheduler.create_scheduler_v2 knows, stepped every update
    schedule: Literal["cosine", "tanh", "step", "multistep", "poly", "wsd", "rsqrt", "constant", "none"] = "cosine"
    warmup_epochs: NonNegative = 1.0
    min_lr: NonNegative = 0.0
    label_smoothing: Fraction = 0.1
    aux_weight: NonNegative | None = None  # overrides every aux head's `weight` from the spec
    augment: Annotated[Augment, Parse(_augment)] = Augment()
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # bf16 autocast on CUDA and on CPUs with AMX
    channels_last: bool = True
    # true, or a torch.compile mode
    compile: bool | Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = False
    seed: Annotated[int, at_least(0)] = 0

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """The config with command-line values (None: not given) over the spec's, checked like it."""
        return replace_checked(self, overrides, lambda key: f"--{key.replace('_', '-')}")


def _directory(value: Any, path: str) -> Path:
    if not isinstance(value, str | Path) or not str(value).strip():
        raise SpecError(path, f"expected a directory path, got {value!r}")
    return Path(value).expanduser().resolve()


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, where its files are, how much of the training split is carved for validation."""

    dataset: Dataset = FULL
    root: Annotated[Path, Parse(_directory)] | None = None  # --data-dir overrides it
    val_fraction: Annotated[float, within(0, 1, low_open=True)] = 0.1

    def with_overrides(self, **overrides: Any) -> DataConfig:
        return replace_checked(self, overrides, lambda key: {"root": "--data-dir"}.get(key, f"--{key}"))


def train_config(raw: Mapping[str, Any]) -> TrainConfig:
    """A `train:` mapping checked; errors name `train.<key>`."""
    return parse_section(TrainConfig, raw, "train")


def data_config(raw: Mapping[str, Any], *, data_dir: Path | None = None) -> DataConfig:
    """A `data:` mapping checked (errors name `data.<key>`); `data_dir` (--data-dir) overrides `root`."""
    return parse_section(DataConfig, raw, "data").with_overrides(root=data_dir)
