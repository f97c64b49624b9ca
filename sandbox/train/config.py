"""The spec's `train:` section: defaults, and validation whose errors name `train.<key>`.

The defaults are the ones `search_spaces/fmnist_baseline.yaml` was tuned with (bench/README.md):
on the 5,699-image sample they take a ~30 MFLOP network past 82% test accuracy in 5 epochs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from sandbox.errors import SpecError

PRECISIONS = ("auto", "bf16", "fp32")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
SCHEDULES = ("cosine", "tanh", "step", "multistep", "poly", "wsd", "rsqrt", "constant", "none")


@dataclass(frozen=True)
class Augment:
    crop: int = 2  # zero-pad by this many pixels, then crop back at a random offset
    flip: bool = True  # random horizontal flip


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 15
    batch_size: int = 128
    optimizer: str = "sgd"  # any name timm.optim.create_optimizer_v2 knows ('sgd' is Nesterov SGD)
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # any name timm.scheduler.create_scheduler_v2 knows, stepped every update
    warmup_epochs: float = 1.0
    min_lr: float = 0.0
    label_smoothing: float = 0.1
    aux_weight: float | None = None  # overrides every aux head's `weight` from the spec
    augment: Augment = Augment()
    precision: str = "auto"  # bf16 autocast on CUDA and on CPUs with AMX; fp32 elsewhere
    channels_last: bool = True
    compile: bool | str = False  # true, or a torch.compile mode such as 'max-autotune'
    seed: int = 0

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """The config with command-line values (None means 'not given') put over the spec's."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def train_config(raw: Mapping[str, Any]) -> TrainConfig:
    """Validate a `train:` mapping; unknown keys and bad values are SpecErrors at `train.<key>`."""
    known = {f.name for f in fields(TrainConfig)}
    for key in raw:
        if key not in known:
            raise SpecError(f"train.{key}", f"unknown key (allowed here: {', '.join(sorted(known))})")
    values = {key: _check(key, value) for key, value in raw.items()}
    return TrainConfig(**values)


def _check(key: str, value: Any) -> Any:
    path = f"train.{key}"
    if key in ("epochs", "batch_size"):
        return _number(value, path, int, low=1)
    if key == "seed":
        return _number(value, path, int, low=0)
    if key in ("lr",):
        return _number(value, path, float, low=0, low_open=True)
    if key in ("weight_decay", "min_lr", "warmup_epochs"):
        return _number(value, path, float, low=0)
    if key in ("momentum", "label_smoothing"):
        return _number(value, path, float, low=0, high=1)
    if key == "aux_weight":
        return None if value is None else _number(value, path, float, low=0)
    if key == "optimizer":
        return _optimizer(value, path)
    if key == "schedule":
        return _choice(value, path, SCHEDULES)
    if key == "precision":
        return _choice(value, path, PRECISIONS)
    if key == "channels_last":
        return _bool(value, path)
    if key == "compile":
        return value if isinstance(value, bool) else _choice(value, path, COMPILE_MODES)
    return _augment(value, path)


def _augment(value: Any, path: str) -> Augment:
    if value is False or value is None:
        return Augment(crop=0, flip=False)
    if not isinstance(value, Mapping):
        raise SpecError(path, f"expected a mapping like {{crop: 2, flip: true}} or false, got {value!r}")
    for key in value:
        if key not in ("crop", "flip"):
            raise SpecError(f"{path}.{key}", "unknown key (allowed here: crop, flip)")
    return Augment(
        crop=_number(value.get("crop", Augment.crop), f"{path}.crop", int, low=0),
        flip=_bool(value.get("flip", Augment.flip), f"{path}.flip"),
    )


def _optimizer(value: Any, path: str) -> str:
    from timm.optim import list_optimizers

    known = list_optimizers()
    if not isinstance(value, str) or value.lower() not in known:
        raise SpecError(path, f"unknown optimizer {value!r} (timm's, e.g. sgd, momentum, adamw, lamb, lion)")
    return value.lower()


def _choice(value: Any, path: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SpecError(path, f"expected one of {', '.join(choices)}, got {value!r}")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(path, f"expected true or false, got {value!r}")
    return value


def _number(value: Any, path: str, kind: type, *, low: float, high: float | None = None, low_open: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
        raise SpecError(path, f"expected {'an integer' if kind is int else 'a number'}, got {value!r}")
    too_low = value <= low if low_open else value < low
    if too_low or (high is not None and value >= high):
        bound = f"in [{low}, {high})" if high is not None else f"{'>' if low_open else '>='} {low}"
        raise SpecError(path, f"must be {bound}, got {value}")
    return kind(value)
