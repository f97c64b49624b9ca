"""The spec's `train:` and `data:` sections as typed dataclasses, checked by `sandbox.spec.checks`.

Each field's annotation is its schema: the type, and in `Annotated[...]` its bounds, so an error
names `train.<key>` or `data.<key>` and there is no second list of rules to keep in step.

The `train:` defaults are the ones `search_spaces/fmnist_baseline.yaml` was tuned with
(bench/README.md): on the 5,699-image sample they take a ~30 MFLOP network past 82% test
accuracy in 5 epochs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_type_hints

from sandbox.errors import SpecError
from sandbox.spec.checks import (
    Check,
    Parse,
    above,
    at_least,
    check_keys,
    check_type,
    mapping,
    parse_section,
    replace_checked,
    typed,
    within,
)
from sandbox.spec.datasets import DATASETS, FULL

if TYPE_CHECKING:
    DatasetName = str
else:  # the table's names, checked (and named in errors) as any Literal's are
    DatasetName = Literal[tuple(DATASETS)]
Count = Annotated[int, at_least(1)]
NonNegative = Annotated[float, at_least(0)]
Fraction = Annotated[float, within(0, 1)]
Probability = Annotated[float, Check(lambda v: 0 <= v <= 1, "in [0, 1]")]


def _pair(low: float, high: float | None) -> Parse:
    """A `[low, high]` range of two finite numbers inside `(low, high]` (no upper end: None)."""

    def read(value: Any, path: str) -> tuple[float, float]:
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise SpecError(path, f"expected [low, high], got {value!r}")
        a, b = (typed(v, float, f"{path}[{i}]") for i, v in enumerate(value))
        if not low < a <= b or (high is not None and b > high):
            upper = f" <= {high}" if high is not None else ""
            raise SpecError(path, f"expected {low} < low <= high{upper}, got {list(value)}")
        return a, b

    return Parse(read)


@dataclass(frozen=True)
class ResizedCrop:
    """torchvision's RandomResizedCrop, drawn per image and resampled in one batched call."""

    scale: Annotated[tuple[float, float], _pair(0, 1)] = (0.08, 1.0)  # of the image's area
    ratio: Annotated[tuple[float, float], _pair(0, None)] = (3 / 4, 4 / 3)  # width / height


@dataclass(frozen=True)
class RandAugment:
    """torchvision's RandAugment; `group` images share one draw of operations (see sandbox.train.augment)."""

    ops: Annotated[int, at_least(1)] = 2
    magnitude: Annotated[int, within(0, 31)] = 9  # of torchvision's 31 bins
    group: Annotated[int, at_least(1)] = 16


def _switch(cls: type) -> Parse:
    """A section that is off (false, null), on with its defaults (true) or on with some keys set (a mapping)."""

    def read(value: Any, path: str) -> Any:
        if value is False or value is None:
            return None
        if value is True:
            return cls()
        if not isinstance(value, Mapping):
            raise SpecError(path, f"expected true, false or a mapping of {', '.join(f.name for f in fields(cls))}")
        return parse_section(cls, value, path)

    return Parse(read)


@dataclass(frozen=True)
class Augment:
    crop: Annotated[int, at_least(0)] = 2  # zero-pad by this many pixels, then crop back at a random offset
    flip: bool = True  # random horizontal flip
    resized_crop: Annotated[ResizedCrop, _switch(ResizedCrop)] | None = None
    randaugment: Annotated[RandAugment, _switch(RandAugment)] | None = None
    mixup: NonNegative = 0.0  # timm's Mixup: the Beta(alpha, alpha) of mixup, 0 = off
    cutmix: NonNegative = 0.0  # and of cutmix; with both on, `switch_prob` picks cutmix per batch
    mix_prob: Probability = 1.0  # of mixing a batch at all
    switch_prob: Probability = 0.5

    @property
    def mixes(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0


def _augment(value: Any, path: str) -> Augment:
    """`augment: false` (or empty) turns augmentation off; a mapping sets its keys."""
    if value is False or value is None:
        return Augment(crop=0, flip=False)
    if not isinstance(value, Mapping):
        raise SpecError(path, f"expected a mapping like {{crop: 2, flip: true}} or false, got {value!r}")
    return parse_section(Augment, value, path)


@dataclass(frozen=True)
class Init:
    """Weights a run starts from: every tensor whose name (through the key map of `source`) and shape match."""

    weights: str  # a file, or (source sandbox) a run directory
    source: Literal["torchvision", "timm", "sandbox"] = "sandbox"


def _init(value: Any, path: str) -> Init:
    if isinstance(value, str | Path):
        value = {"weights": value}
    check_keys(mapping(value, path), ("weights", "from"), path, required=("weights",))
    weights = value["weights"]
    if not isinstance(weights, str | Path) or not str(weights).strip():
        raise SpecError(f"{path}.weights", f"expected a file path, got {weights!r}")
    source = check_type(value.get("from", "sandbox"), get_type_hints(Init)["source"], f"{path}.from")
    return Init(str(Path(weights).expanduser().resolve()), source)


def _module_paths(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise SpecError(path, f"expected a list of module paths like [stem, stages.0], got {value!r}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise SpecError(f"{path}[{i}]", f"expected a module path like stages.0, got {item!r}")
    return tuple(value)


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
    seed: Annotated[int, within(0, 2**32)] = 0  # NumPy's generators, which timm's mixup draws from, take no more
    ema: Annotated[float, within(0, 1, low_open=True)] | None = None  # timm's ModelEmaV3 decay; evaluated, saved
    ema_warmup: bool = False  # ModelEmaV3's warm-up: decay 1 - (1 + step)^(-2/3) until it reaches `ema`
    clip_grad: Annotated[float, above(0)] | None = None  # timm's dispatch_clip_grad after every backward
    clip_mode: Literal["norm", "value", "agc"] = "norm"
    init: Annotated[Init, Parse(_init)] | None = None  # {weights: FILE, from: torchvision|timm|sandbox}
    freeze: Annotated[tuple[str, ...], Parse(_module_paths)] = ()  # module paths: [stem, stages.0]
    checkpoint_every: Annotated[int, at_least(0)] = 0  # epochs between checkpoints (RUN_DIR/checkpoint.pt); 0: none

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """The config with command-line values (None: not given) over the spec's, checked like it."""
        return replace_checked(self, overrides, lambda key: f"--{key.replace('_', '-')}")

    def fitted_to(self, images: int, say: Callable[[str], None]) -> TrainConfig:
        """The config with `batch_size` at most the training split's size, saying so when it was more:
        such a batch trains as the whole split, but evaluation padded every batch to it (100,000 on
        5,129 images took 7.7 GB)."""
        if self.batch_size <= images:
            return self
        say(f"train.batch_size {self.batch_size:,} is more than the {images:,} training images: batches of {images:,}")
        return replace(self, batch_size=images)


def _directory(value: Any, path: str) -> Path:
    if not isinstance(value, str | Path) or not str(value).strip():
        raise SpecError(path, f"expected a directory path, got {value!r}")
    return Path(value).expanduser().resolve()


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, where its files are, how much of the training split is carved for validation
    (and for testing, where the dataset has no test split), and how much device memory it may take."""

    dataset: DatasetName = FULL
    root: Annotated[Path, Parse(_directory)] | None = None  # --data-dir overrides it
    val_fraction: Annotated[float, within(0, 1, low_open=True)] = 0.1
    test_fraction: Annotated[float, within(0, 1, low_open=True)] = 0.1  # only an image folder without test/
    # The uint8 dataset lives on the device when it takes at most this share of the free device
    # memory, else on the host (pinned on CUDA), copied batch by batch; 0 keeps it on the host always.
    device_share: Annotated[float, Check(lambda v: 0 <= v <= 1, "in [0, 1]")] = 0.5

    def with_overrides(self, **overrides: Any) -> DataConfig:
        return replace_checked(self, overrides, lambda key: {"root": "--data-dir"}.get(key, f"--{key}"))


def train_config(raw: Mapping[str, Any]) -> TrainConfig:
    """A `train:` mapping checked; errors name `train.<key>`."""
    return parse_section(TrainConfig, raw, "train")


def data_config(raw: Mapping[str, Any], *, data_dir: Path | None = None) -> DataConfig:
    """A `data:` mapping checked (errors name `data.<key>`); `data_dir` (--data-dir) overrides `root`."""
    return parse_section(DataConfig, raw, "data").with_overrides(root=data_dir)
