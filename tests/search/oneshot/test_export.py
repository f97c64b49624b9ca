"""A one-shot search's subnet exported with the supernet's weights: the same file as its concrete spec's."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

from sandbox import SandboxError, api
from sandbox.search.oneshot.score import Scorer
from sandbox.search.oneshot.supernet import Supernet
from sandbox.search.oneshot.train import load_data
from sandbox.space.bounds import random_params
from sandbox.spec.one_shot import OneShotConfig
from tests.idx import write_fashion_mnist
from tests.search.spaces import tiny_space

SPACE = tiny_space(strategy="one-shot", one_shot={"calibration": 2}, sampler="random", pruner="none")


@pytest.fixture
def one_shot_run(tmp_path: Path) -> tuple[Path, Path, list[dict[str, Any]]]:
    """A run directory as a one-shot search leaves it (a supernet with other than fresh weights, the
    scored subnets), and the data it searched."""
    data_dir = write_fashion_mnist(tmp_path / "data", train=256, test=32)
    torch.manual_seed(0)
    net = Supernet(SPACE, tmp_path)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    torch.save({"identity": {"space": SPACE}, "model": net.state_dict()}, run_dir / "supernet.pt")
    rng = random.Random(3)
    scored = [{"params": random_params(SPACE, rng), "screen": 0.95 - 0.1 * k, "flops": 0} for k in range(3)]
    for finalist, score in zip(scored[:2], (0.9, 0.8), strict=True):
        finalist["score"] = score
    (run_dir / "one_shot.json").write_text(json.dumps({"seed": 5, "screen_images": 64, "scored": scored}))
    return run_dir, data_dir, scored


def test_a_subnet_exports_as_its_concrete_spec_with_the_supernets_weights(
    one_shot_run: tuple[Path, Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    run_dir, data_dir, scored = one_shot_run
    exported = api.subnet_exportable(run_dir, 2, data_dir=data_dir)
    subnet_files = api.export(run_dir, out=tmp_path / "subnet.py", subnet=2, data_dir=data_dir)

    spec_file = tmp_path / "concrete.yaml"
    spec_file.write_text(yaml.safe_dump(exported.spec.raw, sort_keys=False))
    torch.save(exported.state_dict(), tmp_path / "weights.pt")
    concrete_files = api.export(spec_file, out=tmp_path / "concrete.py", weights=tmp_path / "weights.pt")

    def body(path: Path) -> str:  # the code, without the docstring that names the source and accuracy
        return path.read_text().split('"""', 2)[2]

    assert len(subnet_files) == len(concrete_files) == 2  # the code, and the weights beside it
    assert body(subnet_files[0]) == body(concrete_files[0])
    theirs, mine = (torch.load(files[1], weights_only=True) for files in (concrete_files, subnet_files))
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[key], theirs[key]) for key in mine)
    assert (
        "subnet 2 of 3" in (tmp_path / "subnet.py").read_text()
        and "80.00% on validation" in (tmp_path / "subnet.py").read_text()
    )

    # and the exported network computes what the supernet computes for that subnet, batch norms
    # measured on the batches the search's scoring used
    net = Supernet(SPACE, tmp_path)
    net.load_state_dict(torch.load(run_dir / "supernet.pt", weights_only=True)["model"])
    data, recipe = load_data(net, "cpu", data_dir)
    subnet = net.select(scored[1]["params"])
    settings = OneShotConfig(calibration=2)
    Scorer(net, data, settings, batch=recipe.batch_size, seed=5, channels_last=recipe.channels_last).calibrate(subnet)
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(exported.model(x), net.eval()(x, subnet))


def test_a_subnet_the_screen_left_out_says_its_screen_is_its_score(
    one_shot_run: tuple[Path, Path, list[dict[str, Any]]],
) -> None:
    run_dir, data_dir, _ = one_shot_run
    exported = api.subnet_exportable(run_dir, 3, data_dir=data_dir)
    assert exported.accuracy.startswith("75.00% on 64 validation images (screened, not a finalist)")


@pytest.mark.parametrize(
    ("rank", "damage", "message"),
    [
        (4, None, r"--subnet: 4 is not a rank of the 3 subnets scored in"),
        (1, "one_shot.json", r"--subnet: .*one_shot\.json is missing: not the run directory of a one-shot search"),
        (1, "supernet.pt", r"--subnet: .*supernet\.pt is missing"),
    ],
)
def test_a_subnet_that_cannot_be_exported_is_one_line(
    one_shot_run: tuple[Path, Path, list[dict[str, Any]]], rank: int, damage: str | None, message: str
) -> None:
    run_dir, data_dir, _ = one_shot_run
    if damage is not None:
        (run_dir / damage).unlink()
    with pytest.raises(SandboxError, match=message):
        api.subnet_exportable(run_dir, rank, data_dir=data_dir)
