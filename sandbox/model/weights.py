"""Key mapping between torchvision's GoogLeNet and a sandbox network of the same layout.

torchvision names           sandbox names
conv1. conv2. conv3.    →   stem.conv1. stem.conv2. stem.conv3.
inception4c.branch2.    →   stages.1.blocks.2.branches.1.   (stage = digit - 3, block = letter, branch - 1)
aux1. aux2.             →   aux.0. aux.1.
fc.                     →   head.fc.

Used by the parity test, and by `build(spec, torchvision_weights=...)` to start from
torchvision's pretrained GoogLeNet weights where a user has them.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from sandbox.errors import SandboxError, describe

_INCEPTION = re.compile(r"^inception(\d)([a-z])\.branch(\d)\.")
_AUX = re.compile(r"^aux(\d)\.")


def torchvision_key(key: str) -> str:
    """The sandbox name of one torchvision GoogLeNet state-dict key."""
    if key.startswith(("conv1.", "conv2.", "conv3.")):
        return f"stem.{key}"
    if key.startswith("fc."):
        return f"head.{key}"
    if match := _INCEPTION.match(key):
        stage, block, branch = int(match[1]) - 3, ord(match[2]) - ord("a"), int(match[3]) - 1
        return f"stages.{stage}.blocks.{block}.branches.{branch}.{key[match.end() :]}"
    if match := _AUX.match(key):
        return f"aux.{int(match[1]) - 1}.{key[match.end() :]}"
    raise SandboxError(f"torchvision weights: unexpected key {key!r} (not a GoogLeNet state dict?)")


def state_misfit(state: Mapping[str, Tensor], model: nn.Module, *, optional: str | None = None) -> str | None:
    """Why `state` does not load into `model`, in one line, or None if it does: names missing from it
    (those starting with `optional` may be), names the network lacks, and the first tensor whose shape
    differs, with both shapes, where load_state_dict would say only "Error(s) in loading state_dict"."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not (optional and k.startswith(optional))]
    unexpected = [k for k in state if k not in expected]
    reshaped = [k for k, v in expected.items() if k in state and state[k].shape != v.shape]
    named = {"missing": missing, "unexpected": unexpected}
    problems = [f"{what} {', '.join(keys[:3])}{' ...' * (len(keys) > 3)}" for what, keys in named.items() if keys]
    if reshaped:
        key, more = reshaped[0], f" (and {len(reshaped) - 1} more)" if len(reshaped) > 1 else ""
        problems.append(
            f"{key} is {tuple(state[key].shape)} in the weights but {tuple(expected[key].shape)} in the network{more}"
        )
    return "; ".join(problems) or None


def from_torchvision(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {torchvision_key(key): value for key, value in state_dict.items()}


def load_torchvision_weights(model: nn.Module, weights: str | Path | Mapping[str, Tensor]) -> None:
    """Load a torchvision GoogLeNet state dict (a file or a mapping) into `model`.

    Auxiliary-classifier weights are skipped when the model has no aux heads, as torchvision
    does when it is built with `aux_logits=False`.
    """
    if not isinstance(weights, Mapping):
        try:
            weights = torch.load(weights, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, pickle.UnpicklingError) as err:
            raise SandboxError(f"cannot read torchvision weights {weights}: {describe(err)}") from err
        if not isinstance(weights, Mapping):
            raise SandboxError(f"torchvision weights: expected a state dict, got {type(weights).__name__}")
    mapped = from_torchvision(weights)
    if not any(key.startswith("aux.") for key in model.state_dict()):
        mapped = {key: value for key, value in mapped.items() if not key.startswith("aux.")}
    try:
        result = model.load_state_dict(mapped, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise SandboxError(f"torchvision weights do not fit this network: {str(err).splitlines()[-1].strip()}") from err
    problems = [*(f"missing {k}" for k in result.missing_keys), *(f"unexpected {k}" for k in result.unexpected_keys)]
    if problems:
        raise SandboxError(f"torchvision weights do not fit this network: {'; '.join(problems[:3])}")
