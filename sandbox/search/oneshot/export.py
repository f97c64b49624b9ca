"""A subnet of a one-shot search, exported with the weights it inherits from the trained supernet.

`sandbox export RUN_DIR --subnet K` takes the K-th best scored subnet of a one-shot search
(`RUN_DIR/one_shot.json`, 1 = the best score), rebuilds the supernet from `RUN_DIR/supernet.pt` (the
checkpoint holds the space it was trained on), measures the subnet's batch norms on the same
training batches its score used, and hands its concrete spec with the inherited weights to the
export writers. The result is the very file an export of that concrete spec with those weights
writes (`sandbox export SPEC --weights FILE`): a subnet is an ordinary network once selected. Its
accuracy is the supernet's score, not a stand-alone training's: the top k retrained trials are those.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sandbox.errors import SandboxError, describe
from sandbox.model.builder import InceptionNet, build
from sandbox.search.oneshot.score import Scorer
from sandbox.search.oneshot.strategy import CHECKPOINT, RESULTS
from sandbox.search.oneshot.supernet import Supernet
from sandbox.search.oneshot.train import load_data
from sandbox.spec.load import Spec, load_plugins
from sandbox.spec.one_shot import OneShotConfig, one_shot_config
from sandbox.train.loop import normalized


@dataclass(frozen=True)
class InheritedSubnet:
    """A selected subnet as a standalone network with the supernet's weights, in eval mode."""

    spec: Spec
    model: InceptionNet
    checkpoint: Path  # where the weights came from
    origin: str  # which subnet of which run, in words
    accuracy: str  # its supernet score, in words


def inherited_subnet(
    run_dir: Path, rank: int, *, data_dir: Path | None = None, plugin_files: Sequence[str | Path] = ()
) -> InheritedSubnet:
    """The subnet ranked `rank` (1 = best score) of the one-shot search in `run_dir`."""
    scored, seed, screen_images = _scored(run_dir)
    if not 1 <= rank <= len(scored):
        raise SandboxError(f"--subnet: {rank} is not a rank of the {len(scored)} subnets scored in {run_dir / RESULTS}")
    chosen = scored[rank - 1]
    load_plugins(command_line=plugin_files)
    space, state = _checkpoint(run_dir)
    net = Supernet(space, run_dir)
    net.load_state_dict(state)
    settings = one_shot_config(space.get("search") or {}) or OneShotConfig()
    data, recipe = load_data(net, "cpu", data_dir)
    subnet = net.select(chosen["params"])
    Scorer(net, data, settings, batch=recipe.batch_size, seed=seed, channels_last=recipe.channels_last).calibrate(
        subnet
    )
    spec, _ = normalized(subnet.spec, data, None)  # as the supernet normalized it, and as a trial would train
    model = build(spec)
    model.load_state_dict(net.standalone_state(subnet))
    return InheritedSubnet(
        spec,
        model.eval(),
        run_dir / CHECKPOINT,
        f"subnet {rank} of {len(scored)} scored by the one-shot search run {run_dir}",
        _accuracy_text(chosen, screen_images),
    )


def _accuracy_text(chosen: dict[str, Any], screen_images: int | None) -> str:
    """The subnet's supernet score in words: a finalist's full score, else its screen's."""
    measured = "with the supernet's weights, batch norms measured for it (not trained stand-alone)"
    if "score" in chosen:
        return f"{chosen['score']:.2%} on validation {measured}"
    return (
        f"{chosen['screen']:.2%} on {screen_images or 'some'} validation images (screened, not a finalist) {measured}"
    )


def _scored(run_dir: Path) -> tuple[list[dict[str, Any]], int, int | None]:
    """The scored subnets best first, the search's seed, and how many images the screen used."""
    path = run_dir / RESULTS
    try:
        record = json.loads(path.read_text())
        return list(record["scored"]), int(record["seed"]), record.get("screen_images")
    except OSError as err:
        raise SandboxError(f"--subnet: {path} is missing: not the run directory of a one-shot search") from err
    except (ValueError, KeyError, TypeError) as err:
        raise SandboxError(f"--subnet: {path} is not a one-shot search's record ({describe(err)})") from err


def _checkpoint(run_dir: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    path = run_dir / CHECKPOINT
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        return saved["identity"]["space"], saved["model"]
    except FileNotFoundError as err:
        raise SandboxError(f"--subnet: {path} is missing (the trained supernet)") from err
    except Exception as err:
        raise SandboxError(f"--subnet: {path} is unreadable ({describe(err)})") from err
