"""Training the supernet, on tiny data made here."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from sandbox.errors import SandboxError
from sandbox.model.flops import count
from sandbox.search.oneshot.supernet import Supernet
from sandbox.search.oneshot.train import ends, train_supernet
from sandbox.space.bounds import random_params
from sandbox.spec.recipe import TrainConfig
from sandbox.train.data import Data, Split
from tests.search.oneshot.test_supernet import SPACE


def tiny_data(n: int = 32) -> Data:
    generator = torch.Generator().manual_seed(0)

    def split(count: int) -> Split:
        images = torch.randint(0, 256, (count, 1, 16, 16), dtype=torch.uint8, generator=generator)
        return Split(images, torch.randint(0, 5, (count,), generator=generator), torch.device("cpu"))

    return Data("tiny", Path("."), split(n), split(24), split(24))


@pytest.mark.parametrize("sampling", ["uniform", "sandwich"])
def test_training_updates_the_shared_weights(sampling: str) -> None:
    torch.manual_seed(0)
    net = Supernet(SPACE, Path.cwd())
    before = [p.detach().clone() for p in net.parameters()]
    config = TrainConfig(epochs=2, batch_size=16, lr=0.05, warmup_epochs=0)
    result = train_supernet(net, tiny_data(), config, sampling=sampling)  # type: ignore[arg-type]
    assert [r["epoch"] for r in result["history"]] == [1, 2]
    assert all(math.isfinite(r["loss"]) for r in result["history"])
    changed = sum(not torch.equal(b, p) for b, p in zip(before, net.parameters(), strict=True))
    assert changed > len(before) // 2


def test_the_sandwich_ends_bound_the_space() -> None:
    net = Supernet(SPACE, Path.cwd())
    fixed = ends(SPACE)
    smallest = count(net.select(fixed.smallest).spec).flops
    rng = random.Random(0)
    drawn = [count(net.select(random_params(SPACE, rng)).spec).flops for _ in range(20)]
    assert smallest <= min(drawn) and count(net.select(fixed.largest).spec).flops >= sorted(drawn)[10]


class Killed(Exception):
    pass


def test_a_resumed_supernet_trains_as_an_uninterrupted_one(tmp_path: Path) -> None:
    def trained(epochs: int, checkpoint: Path | None, say: Callable[[str], None] = print) -> list[torch.Tensor]:
        torch.manual_seed(0)
        net = Supernet(SPACE, Path.cwd())
        config = TrainConfig(epochs=epochs, batch_size=16, lr=0.05, warmup_epochs=0)
        train_supernet(net, tiny_data(), config, checkpoint=checkpoint, say=say)
        return [p.detach().clone() for p in net.parameters()]

    def killed_after_epoch_1(line: str) -> None:
        if "epoch 1/2" in line:
            raise Killed

    whole = trained(2, None)
    path = tmp_path / "supernet.pt"
    with pytest.raises(Killed):
        trained(2, path, killed_after_epoch_1)
    with pytest.raises(SandboxError, match="another space, recipe or sampling"):
        trained(3, path)
    resumed = trained(2, path)
    assert all(torch.equal(a, b) for a, b in zip(whole, resumed, strict=True))
