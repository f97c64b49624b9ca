"""RUN_DIR/checkpoint.pt: everything a killed run needs to go on as if it had never stopped.

Written every `train.checkpoint_every` epochs, atomically, after the epoch's validation: the model,
optimizer, scheduler and EMA states, the history so far, and every random stream the loop draws
from (the augmentation and batch-order generator, torch's global CPU and CUDA generators, which
dropout uses, and NumPy's, which timm's mixup uses). Resuming restores them all after the network
is built, so on the same device and thread count the resumed run's epochs, metrics and weights are
those of an uninterrupted run with the same seed.

A checkpoint records the concrete spec and the effective `train:` recipe it was made with; a
resume with anything else (another network, another lr, more epochs) is refused naming the first
difference, since it would be neither run. Its parts and the network's tensor shapes are checked
when it is read, before the run directory or the data are touched: a refused resume changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.scheduler.scheduler import Scheduler
from timm.utils import ModelEmaV3
from torch import nn

from sandbox.errors import SandboxError, describe
from sandbox.model.builder import build
from sandbox.model.weights import state_misfit
from sandbox.runs import atomic_write
from sandbox.spec.load import load_spec
from sandbox.train.finetune import freeze

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = 1
PARTS = ("model", "optimizer", "scheduler", "ema", "rng", "history")


def rng_state(generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    """The random streams a run draws from, as tensors and numbers (loadable with weights_only)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state(legacy=True)
    assert isinstance(keys, np.ndarray)  # the legacy form: (kind, keys, position, has_gauss, gauss)
    return {
        "generator": generator.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": position,
                  "has_gauss": has_gauss, "gauss": gauss},
    }  # fmt: skip


def restore_rng(state: Mapping[str, Any], generator: torch.Generator, device: torch.device) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    numpy = state["numpy"]
    keys = numpy["keys"].numpy().astype(np.uint32)
    np.random.set_state((numpy["kind"], keys, numpy["position"], numpy["has_gauss"], numpy["gauss"]))


@dataclass
class TrainingState:
    """What a checkpoint holds of a run in progress, besides its history."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Scheduler | None
    ema: ModelEmaV3 | None
    generator: torch.Generator
    device: torch.device

    def capture(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "rng": rng_state(self.generator, self.device),
        }

    def restore(self, checkpoint: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Put a checkpoint's states back; returns its history (the epochs done).

        `load_checkpoint` checked the parts and the network's shapes; what it cannot check without
        the optimizer (its state's layout, the random states) still fails in one line here."""
        try:
            self.model.load_state_dict(checkpoint["model"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(checkpoint["scheduler"])
            if self.ema is not None:
                self.ema.module.load_state_dict(checkpoint["ema"])
            restore_rng(checkpoint["rng"], self.generator, self.device)
            return [dict(record) for record in checkpoint["history"]]
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            raise SandboxError(f"cannot resume: {CHECKPOINT_FILE} does not restore ({describe(err)})") from err


def save_checkpoint(out_dir: Path, identity: Mapping[str, Any], state: TrainingState, history: list[Any]) -> None:
    """The run so far, written to a temporary file and renamed: a kill mid-write leaves the last one whole."""
    checkpoint = {"format": FORMAT, "identity": identity, **state.capture(), "history": history}
    atomic_write(out_dir / CHECKPOINT_FILE, lambda path: torch.save(checkpoint, path))


def load_checkpoint(run_dir: Path, identity: Mapping[str, Any]) -> dict[str, Any]:
    """The checkpoint of `run_dir`, refused (one line, the reason) when it is not of this spec and recipe."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        why = "no checkpoint was written (train.checkpoint_every is 0) or the run stopped before the first"
        raise SandboxError(f"cannot resume {run_dir}: it has no {CHECKPOINT_FILE} ({why})")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # states load onto the device
    except Exception as err:  # a damaged file fails anywhere in the unpickler (IndexError, KeyError, ...)
        raise SandboxError(f"cannot resume {run_dir}: {CHECKPOINT_FILE} is unreadable ({describe(err)})") from err
    before = checkpoint.get("identity") if isinstance(checkpoint, dict) else None
    if (
        not isinstance(checkpoint, dict)
        or checkpoint.get("format") != FORMAT
        or not isinstance(before, dict)
        or not isinstance(before.get("spec"), dict)
        or not isinstance(before.get("train"), dict)
    ):
        raise SandboxError(f"cannot resume {run_dir}: {CHECKPOINT_FILE} is not a checkpoint of this sandbox version")
    # `before`: the spec as written, then the recipe as run (command-line flags in it)
    spec = identity["spec"]
    if "normalize" not in spec and "normalize" in before["spec"]:  # unset: the dataset's own, as it resolved them
        spec = {**spec, "normalize": before["spec"]["normalize"]}
    difference = first_difference(before["spec"], spec) or first_difference(before["train"], identity["train"], "train")
    if difference is not None:
        raise SandboxError(
            f"cannot resume {run_dir}: its checkpoint is of another spec or recipe ({difference}); "
            "resume with the spec and flags it was started with, or start a new run"
        )
    misfit = _misfit(checkpoint, identity)
    if misfit is not None:
        raise SandboxError(f"cannot resume {run_dir}: {CHECKPOINT_FILE} {misfit}")
    return checkpoint


def _misfit(checkpoint: Mapping[str, Any], identity: Mapping[str, Any]) -> str | None:
    """Why a checkpoint of the right spec and recipe still cannot be restored (parts missing, the
    network's tensors of other shapes), or None; the network is built (and frozen as the run
    freezes it) on the CPU to compare with."""
    missing = [part for part in PARTS if part not in checkpoint]
    if missing:
        return f"lacks {', '.join(missing)}"
    history = checkpoint["history"]
    if not isinstance(history, list) or not all(isinstance(record, Mapping) for record in history):
        return "has no list of epochs in its history"
    model = build(load_spec(identity["spec"]), device="cpu")
    freeze(model, identity["train"]["freeze"] or ())
    for part in ("model", "ema") if checkpoint["ema"] is not None else ("model",):
        state = checkpoint[part]
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            return f"holds no tensors as its {part} state"
        misfit = state_misfit(state, model)
        if misfit is not None:
            return f"does not fit the network in its {part} state: {misfit}"
    return None


def first_difference(before: Any, now: Any, path: str = "") -> str | None:
    """Where two spec-like values first differ, as `key: X in the checkpoint, Y now`; None if equal."""
    if isinstance(before, Mapping) and isinstance(now, Mapping):
        for key in [*before, *(k for k in now if k not in before)]:
            inner = f"{path}.{key}" if path else str(key)
            if key not in now or key not in before:
                side = "only in the checkpoint" if key not in now else "not in the checkpoint"
                return f"{inner}: {side}"
            found = first_difference(before[key], now[key], inner)
            if found is not None:
                return found
        return None
    if isinstance(before, list | tuple) and isinstance(now, list | tuple) and len(before) == len(now):
        for index, (a, b) in enumerate(zip(before, now, strict=True)):
            found = first_difference(a, b, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    if before == now:
        return None
    return f"{path}: {before!r} in the checkpoint, {now!r} now"
