"""Fine-tuning: start from other weights where they fit (`train.init`), and freeze modules (`train.freeze`).

`train.init` loads every tensor whose name, through the key map of its `from` (torchvision's or
timm's names, or the sandbox's own), and shape match the network's, and leaves the rest as built:
a head for another number of classes keeps its fresh initialization. What was loaded and what was
left out is reported, never silently dropped. Weights of which nothing fits are an error: the
wrong `from`, or another network.

`train.freeze` is timm's `freeze`: the modules' parameters stop training and their batch norms
become `FrozenBatchNorm2d`, whose statistics no longer move either. `unfreeze` turns them back into
plain batch norms before the weights are saved, so a run directory loads into the network its spec
builds, frozen or not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from timm.utils import freeze as timm_freeze
from timm.utils import unfreeze as timm_unfreeze
from torch import Tensor, nn

from sandbox.errors import SandboxError, SpecError
from sandbox.model import weights as key_maps
from sandbox.spec.recipe import Init

SHOWN = 6  # names listed per kind of leftover; the rest are counted


def _rename(source: str, model: nn.Module, state: Mapping[str, Tensor]) -> Callable[[str], str]:
    """The sandbox name of a key of weights from `source` (the reference network told by their keys);
    the callable raises SandboxError for a key with no place in the network."""
    if source == "sandbox":
        return lambda key: key
    try:
        return key_maps.key_map(source, model, state)
    except SandboxError as err:
        raise SpecError("train.init.from", f"{err}; is `from` right?") from err


@dataclass(frozen=True)
class InitReport:
    """What `load_init` did: tensors loaded, and each kind left out."""

    weights: str
    source: str
    loaded: int
    total: int  # tensors in the network's state dict
    reshaped: tuple[str, ...]  # in both, another shape: kept as initialized (a head for other classes)
    unplaced: tuple[str, ...]  # in the weights, with no place in the network
    unfilled: tuple[str, ...]  # in the network, not in the weights: kept as initialized

    def lines(self) -> list[str]:
        lines = [
            f"init: loaded {self.loaded} of the network's {self.total} tensors from {self.weights} ({self.source})"
        ]
        for what, keys in (
            ("left out, shape differs (kept as initialized)", self.reshaped),
            ("left out, not in the network", self.unplaced),
            ("not in the weights (kept as initialized)", self.unfilled),
        ):
            if keys:
                more = f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
                lines.append(f"init: {what}: {', '.join(keys[:SHOWN])}{more}")
        return lines

    def summary(self) -> dict[str, Any]:
        return {
            "weights": self.weights,
            "from": self.source,
            "loaded": self.loaded,
            "total": self.total,
            "reshaped": list(self.reshaped),
            "unplaced": list(self.unplaced),
            "unfilled": list(self.unfilled),
        }


def read_init(init: Init) -> dict[str, Tensor]:
    """The state dict `init.weights` holds: a safetensors or torch file, a run directory's weights,
    or a sandbox checkpoint's model."""
    from sandbox.runs import WEIGHTS_FILE  # runs builds networks: imported late to keep this light

    path = Path(init.weights)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.is_file():
        raise SpecError("train.init.weights", f"no such file: {path}")
    try:
        return key_maps.read_weights(path)
    except SandboxError as err:
        raise SpecError("train.init.weights", str(err)) from err


def load_matching(model: nn.Module, state: Mapping[str, Tensor], rename: Callable[[str], str]) -> dict[str, Any]:
    """Copy into `model` every tensor of `state` whose renamed key and shape match; say what did not."""
    own = model.state_dict()
    renamed: dict[str, Tensor] = {}
    unplaced = []
    for key, value in state.items():
        try:
            name = rename(key)
        except SandboxError:
            name = key
        if name in own:
            renamed[name] = value
        else:
            unplaced.append(key)
    fitting = {k: v for k, v in renamed.items() if v.shape == own[k].shape}
    model.load_state_dict(fitting, strict=False)
    return {
        "loaded": len(fitting),
        "total": len(own),
        "reshaped": tuple(k for k in own if k in renamed and k not in fitting),
        "unplaced": tuple(unplaced),
        "unfilled": tuple(k for k in own if k not in renamed),
    }


def load_init(model: nn.Module, init: Init, state: Mapping[str, Tensor] | None = None) -> InitReport:
    """Start `model` from `init.weights` (`state`, when read already) where they fit; an error if nothing fits."""
    state = read_init(init) if state is None else state
    result = load_matching(model, state, _rename(init.source, model, state))
    if not result["loaded"]:
        raise SpecError(
            "train.init",
            f"no tensor of {init.weights} fits this network with {init.source}'s names "
            f"(first keys there: {', '.join(result['unplaced'][:3]) or 'none'}); is `from` right?",
        )
    return InitReport(init.weights, init.source, **result)


def check_freeze(model: nn.Module, paths: Sequence[str]) -> None:
    """Every path of `train.freeze` names a module of the network; the first that does not is a SpecError."""
    names = dict(model.named_modules())
    for index, path in enumerate(paths):
        if path not in names or not path:
            shallow = [name for name in names if name and name.count(".") <= 1]
            raise SpecError(
                f"train.freeze[{index}]", f"no module {path!r} in this network (modules: {', '.join(shallow)})"
            )


def freeze(model: nn.Module, paths: Sequence[str]) -> None:
    if paths:
        check_freeze(model, paths)
        timm_freeze(model, list(paths))


def unfreeze(model: nn.Module, paths: Sequence[str]) -> None:
    """Plain batch norms again, on the model's device (timm makes new ones on the CPU)."""
    if paths:
        timm_unfreeze(model, list(paths))
        device = next(model.parameters()).device
        model.to(device)
