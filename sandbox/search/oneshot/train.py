"""Training the supernet: a sampled subnet per step.

Training follows the space's `train:` recipe with the trainer's own optimizer, schedule, label
smoothing and augmentation (`sandbox.train.loop`, `sandbox.train.augment`); what differs is the
network each step: SPOS draws one candidate uniformly from the space; `sandwich` trains the largest
and the smallest candidate and one drawn at random on every batch (gradients summed, one update), so
the widths' shared channels are pulled by both ends. Scoring is `sandbox.search.oneshot.score`.
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from optuna.distributions import CategoricalDistribution

from sandbox.errors import SandboxError, describe
from sandbox.runs import atomic_write
from sandbox.search.oneshot.layout import Subnet
from sandbox.search.oneshot.supernet import Supernet
from sandbox.space.bounds import random_params
from sandbox.spec.primitives import DROP, Primitive, recording, sample
from sandbox.spec.recipe import TrainConfig
from sandbox.train.augment import Augmenter
from sandbox.train.checkpoint import TrainingState, first_difference
from sandbox.train.data import Data, load_for, to_float
from sandbox.train.loop import normalized, optimizer_and_scheduler

Sampling = Literal["uniform", "sandwich"]
SAMPLINGS: tuple[Sampling, ...] = ("uniform", "sandwich")
Say = Callable[[str], None]


@dataclass(frozen=True)
class Ends:
    """The params of the space's smallest and largest candidates, nearly: each number at its low
    or high end, `none` where the smallest may drop a part, else the first option (the sandwich's
    two fixed ends; not the exact FLOP extremes, which `sandbox.space.bounds` searches for)."""

    smallest: dict[str, Any]
    largest: dict[str, Any]


def ends(space: Mapping[str, Any]) -> Ends:
    def extreme(high: bool) -> dict[str, Any]:
        params: dict[str, Any] = {}

        def suggest(primitive: Primitive) -> Any:
            dist = primitive.distribution
            if not isinstance(dist, CategoricalDistribution):
                return dist.high if high else dist.low
            choices = dist.choices
            numbers = [c for c in choices if isinstance(c, int | float) and not isinstance(c, bool)]
            if len(numbers) == len(choices):
                return max(numbers) if high else min(numbers)
            if not high and DROP in choices:
                return DROP
            return next(c for c in choices if c != DROP)

        sample(space, recording(suggest, params))
        return params

    return Ends(extreme(False), extreme(True))


def load_data(net: Supernet, device: torch.device | str, data_dir: Path | None = None) -> tuple[Data, TrainConfig]:
    """The space's data as its search loads it (its `data:` section, the same fixed validation split)
    and its recipe; the supernet normalizes as the trainer would (the dataset's statistics unless
    the space sets `normalize:`)."""
    data = load_for(net.first, device, data_dir)
    spec, _ = normalized(net.first, data, None)
    net.mean.copy_(torch.tensor(spec.mean).view_as(net.mean))
    net.std.copy_(torch.tensor(spec.std).view_as(net.std))
    return data, spec.train


class Subnets:
    """Subnets by their params, selected once (selecting validates the concrete spec)."""

    def __init__(self, net: Supernet) -> None:
        self.net = net
        self.cache: dict[str, Subnet] = {}

    def __call__(self, params: Mapping[str, Any]) -> Subnet:
        key = repr(sorted(params.items()))
        if key not in self.cache:
            if len(self.cache) > 4096:
                self.cache.clear()
            self.cache[key] = self.net.select(params)
        return self.cache[key]


def train_supernet(
    net: Supernet,
    data: Data,
    config: TrainConfig,
    *,
    sampling: Sampling = "uniform",
    say: Say | None = None,
    checkpoint: Path | None = None,
) -> dict[str, Any]:
    """Train `net` for `config.epochs` with the recipe; its per-epoch losses and the seconds it took.

    With `checkpoint`, the state after each epoch is written there, and a file already there (of
    this space, recipe and sampling) is resumed from: a killed one-shot search goes on where it was."""
    say = say or (lambda line: None)
    torch.manual_seed(config.seed)
    if config.channels_last:  # as the trainer runs: on a CPU, channels-first max pools cost 10x
        net.to(memory_format=torch.channels_last)
    rng = random.Random(config.seed)
    batch = min(config.batch_size, len(data.train))
    steps = len(data.train) // batch
    optimizer, scheduler = optimizer_and_scheduler(net, config, steps)
    generator = torch.Generator(device=data.train.device).manual_seed(config.seed)
    augmenter = Augmenter(config.augment, generator)
    criterion = functools.partial(F.cross_entropy, label_smoothing=config.label_smoothing)
    subnets = Subnets(net)
    fixed = ends(net.space) if sampling == "sandwich" else None
    state = TrainingState(net, optimizer, scheduler, None, generator, data.train.device)
    identity = {"space": json.loads(json.dumps(net.space)), "train": asdict(config), "sampling": sampling}
    history: list[dict[str, Any]] = []
    if checkpoint is not None and checkpoint.is_file():
        history = _resume(checkpoint, identity, state, rng)
        say(f"supernet: resuming {checkpoint} after epoch {len(history)} of {config.epochs}")
    for epoch in range(len(history), config.epochs):
        net.train()
        began = time.perf_counter()
        order = torch.randperm(len(data.train), device=data.train.device, generator=generator)[: steps * batch]
        total = 0.0
        for step, (images, labels) in enumerate(data.train.batches(order, batch)):
            x = to_float(augmenter(images), channels_last=config.channels_last)
            drawn = [random_params(net.space, rng)]
            if fixed is not None:
                drawn = [fixed.largest, fixed.smallest, *drawn]
            optimizer.zero_grad(set_to_none=True)
            for params in drawn:
                loss = criterion(net(x, subnets(params)), labels)
                loss.backward()
                total += loss.item() / len(drawn)
            optimizer.step()
            if scheduler is not None:
                scheduler.step_update(epoch * steps + step + 1)
        history.append({"epoch": epoch + 1, "loss": total / steps, "seconds": time.perf_counter() - began})
        if checkpoint is not None:
            saved = {"identity": identity, **state.capture(), "history": history, "sampler": rng.getstate()}
            atomic_write(checkpoint, functools.partial(torch.save, saved))
        say(f"supernet epoch {epoch + 1}/{config.epochs}: loss {total / steps:.4f}, {history[-1]['seconds']:.1f} s")
    seconds = sum(record["seconds"] for record in history)  # a resumed run counts its earlier epochs too
    return {"history": history, "seconds": seconds, "sampling": sampling}


def _resume(path: Path, identity: Mapping[str, Any], state: TrainingState, rng: random.Random) -> list[dict[str, Any]]:
    """The checkpoint's states put back (its history returned), refused when made for anything else."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise SandboxError(f"cannot resume the supernet: {path} is unreadable ({describe(err)})") from err
    difference = first_difference(saved.get("identity") if isinstance(saved, dict) else None, identity)
    if difference is not None:
        raise SandboxError(
            f"cannot resume the supernet: {path} was made for another space, recipe or sampling ({difference}); "
            "delete it to start again"
        )
    history = state.restore(saved)
    version, internal, gauss = saved["sampler"]
    rng.setstate((version, tuple(internal), gauss))
    return history
