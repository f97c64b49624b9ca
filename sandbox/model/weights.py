"""Key maps between reference networks of torchvision and timm and the sandbox networks of the same
layout, which the shipped specs build: googlenet.yaml, inception_v3.yaml, inception_v4.yaml and
inception_resnet_v2.yaml.

A reference's key names a module and a layer in it; the sandbox's names the module by its place
(`stages.S.blocks.B`) and the layer by its branch (`branches.K`, a split's `trunk` or `parts.P`,
then the plugin's own layers, which the built-in branches name as the libraries do: `conv`, `bn`,
`0`, `1`, ...). The shipped specs give their modules the references' names (`Mixed_6b`,
`inception4c`, `repeat_1.12` from `name: repeat_1` with `repeat: 20`), so modules map by name;
each reference adds its layer names per kind of module, and the renames of its stem, head and aux.

    torchvision googlenet     inception4c.branch2.1.bn.bias       → stages.1.blocks.2.branches.1.1.bn.bias
    torchvision inception_v3  Mixed_7b.branch3x3_2a.conv.weight   → stages.2.blocks.1.branches.1.parts.0.conv.weight
    timm inception_v4         features.19.branch1_1a.conv.weight  → stages.3.blocks.0.branches.1.parts.0.conv.weight
    timm inception_resnet_v2  repeat_1.12.conv2d.weight           → stages.1.blocks.13.project.weight

Which reference a state dict is comes from its keys (each has a `marker` the others lack). Used by
the parity tests, and by `build(spec, torchvision_weights=..., timm_weights=...)` to start from a
library's pretrained weights where a user has them.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from sandbox.errors import SandboxError, describe

LIBRARIES = ("torchvision", "timm")


def _numbered(layer: str, first: int, last: int, path: str) -> dict[str, str]:
    """`{layer}{i}` → `{path}{i - first}` for i in first..last: a chain's layers, numbered by both."""
    return {layer.format(i): path.format(i - first) for i in range(first, last + 1)}


@dataclass(frozen=True)
class Reference:
    """How one library's network names its layers, in terms of the sandbox network's."""

    library: str
    name: str
    marker: str  # a key prefix that this network's state dicts have and the others' lack
    fixed: Mapping[str, str]  # key prefixes renamed as they are: the stem's, the head's, the aux heads'
    layers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # ^ per kind of module (a prefix of its name in the spec), its layers' names → their paths in the module
    first_branch: int = 0  # the number of the first `branchN` (a layer not in `layers`: branches.{N - first})
    projection: str | None = None  # the name of a residual module's 1x1 projection (sandbox: `project`)
    position: str | None = None  # modules named by their place in the network (`features.N`), not by name
    offset: int = 0  # with `position`: the number of the first module (the stem's layers come before)

    def key(self, key: str, blocks: Mapping[str, str], order: list[str]) -> str:
        """The sandbox name of one key, given the spec's module names → their places (`blocks`), in order."""
        for prefix, renamed in self.fixed.items():
            if key.startswith(prefix):
                return renamed + key[len(prefix) :]
        module, rest = self._module(key, blocks, order)
        layer, _, tail = rest.partition(".")
        table = next((t for kind, t in self.layers.items() if module.startswith(kind)), {})
        path = table.get(layer)
        if path is None and (match := re.fullmatch(r"branch(\d+)", layer)):
            path = f"branches.{int(match[1]) - self.first_branch}"
        if path is None and layer == self.projection:
            path = "project"
        if path is None:
            raise SandboxError(f"unexpected key {key!r} (no layer {layer!r} in {self.name}'s {module})")
        return f"{blocks[module]}.{path}.{tail}"

    def _module(self, key: str, blocks: Mapping[str, str], order: list[str]) -> tuple[str, str]:
        """The spec's name of the module a key is in, and the rest of the key."""
        if self.position is not None and (match := re.match(rf"{re.escape(self.position)}\.(\d+)\.", key)):
            index = int(match[1]) - self.offset
            if 0 <= index < len(order):
                return order[index], key[match.end() :]
            raise SandboxError(f"{key!r} is in module {index + 1} of {len(order)}: the spec has fewer")
        parts = key.split(".")
        for end in range(len(parts) - 1, 0, -1):  # the longest prefix that names a module: `repeat_1.12`
            if (name := ".".join(parts[:end])) in blocks:
                return name, ".".join(parts[end:])
        raise SandboxError(f"{key!r} is in no module of this spec (are its modules named as in {self.name}?)")


_V3 = {  # torchvision's Inception3: each kind of module names its layers its own way
    "Mixed_5": {  # InceptionA
        "branch1x1": "branches.0",
        **_numbered("branch5x5_{}", 1, 2, "branches.1.{}"),
        **_numbered("branch3x3dbl_{}", 1, 3, "branches.2.{}"),
        "branch_pool": "branches.3.1",
    },
    "Mixed_6a": {"branch3x3": "branches.0", **_numbered("branch3x3dbl_{}", 1, 3, "branches.1.{}")},  # InceptionB
    "Mixed_6": {  # InceptionC
        "branch1x1": "branches.0",
        **_numbered("branch7x7_{}", 1, 3, "branches.1.{}"),
        **_numbered("branch7x7dbl_{}", 1, 5, "branches.2.{}"),
        "branch_pool": "branches.3.1",
    },
    "Mixed_7a": {
        **_numbered("branch3x3_{}", 1, 2, "branches.0.{}"),
        **_numbered("branch7x7x3_{}", 1, 4, "branches.1.{}"),
    },
    "Mixed_7": {  # InceptionE: the 1x3 and 3x1 are split parts
        "branch1x1": "branches.0",
        "branch3x3_1": "branches.1.trunk",
        "branch3x3_2a": "branches.1.parts.0",
        "branch3x3_2b": "branches.1.parts.1",
        **_numbered("branch3x3dbl_{}", 1, 2, "branches.2.trunk.{}"),
        "branch3x3dbl_3a": "branches.2.parts.0",
        "branch3x3dbl_3b": "branches.2.parts.1",
        "branch_pool": "branches.3.1",
    },
}
_V3_STEM = {"Conv2d_1a_3x3": "conv1a", "Conv2d_2a_3x3": "conv2a", "Conv2d_2b_3x3": "conv2b"}
_V3_STEM |= {"Conv2d_3b_1x1": "conv3b", "Conv2d_4a_3x3": "conv4a"}
_IRV2_STEM = {f"conv2d_{layer}": f"conv{layer}" for layer in ("1a", "2a", "2b", "3b", "4a")}

REFERENCES = (
    Reference(
        "torchvision",
        "googlenet",
        marker="inception3a.",
        fixed={"conv1.": "stem.conv1.", "conv2.": "stem.conv2.", "conv3.": "stem.conv3.", "fc.": "head.fc."}
        | {"aux1.": "aux.0.", "aux2.": "aux.1."},
        first_branch=1,
    ),
    Reference(
        "torchvision",
        "inception_v3",
        marker="Mixed_5b.",
        fixed={f"{theirs}.": f"stem.{ours}." for theirs, ours in _V3_STEM.items()}
        | {"fc.": "head.fc.", "AuxLogits.conv0.": "aux.0.conv.", "AuxLogits.conv1.": "aux.0.conv2."}
        | {"AuxLogits.fc.": "aux.0.fc2."},
        layers=_V3,
    ),
    Reference(
        "timm",
        "inception_v4",
        marker="features.21.",
        fixed={"features.0.": "stem.conv1a.", "features.1.": "stem.conv2a.", "features.2.": "stem.conv2b."}
        | {"last_linear.": "head.fc."},
        layers={
            "mixed_3a": {"conv": "branches.1"},  # a pool, then a strided conv
            "mixed_5a": {"conv": "branches.0"},  # a strided conv, then a pool
            "inception_c": {  # the 1x3 and 3x1 are split parts
                "branch1_0": "branches.1.trunk",
                "branch1_1a": "branches.1.parts.0",
                "branch1_1b": "branches.1.parts.1",
                **_numbered("branch2_{}", 0, 2, "branches.2.trunk.{}"),
                "branch2_3a": "branches.2.parts.0",
                "branch2_3b": "branches.2.parts.1",
            },
        },
        position="features",
        offset=3,
    ),
    Reference(
        "timm",
        "inception_resnet_v2",
        marker="mixed_5b.",
        fixed={f"{theirs}.": f"stem.{ours}." for theirs, ours in _IRV2_STEM.items()} | {"classif.": "head.fc."},
        layers={"conv2d_7b": {"conv": "branches.0.conv", "bn": "branches.0.bn"}},  # a one-branch module
        projection="conv2d",
    ),
)


def reference_of(library: str, keys: Iterable[str]) -> Reference:
    """The reference network whose state dict has these keys; a SandboxError naming the ones known."""
    keys = list(keys)
    for reference in REFERENCES:
        if reference.library == library and any(key.startswith(reference.marker) for key in keys):
            return reference
    known = ", ".join(r.name for r in REFERENCES if r.library == library)
    first = f" (first key {keys[0]!r})" if keys else " (no keys)"
    raise SandboxError(f"{library} weights: not a state dict of {known}{first}")


def key_map(library: str, model: nn.Module, keys: Iterable[str]) -> Callable[[str], str]:
    """Renames the keys of `library`'s weights (which reference they are comes from `keys`) to
    `model`'s; the callable raises SandboxError for a key with no place in the model's layout."""
    reference = reference_of(library, keys)
    spec = getattr(model, "spec", None)
    if spec is None:
        raise SandboxError(f"{library} weights: map them into a sandbox network (built from a spec)")
    places = [f"stages.{s}.blocks.{b}" for s, stage in enumerate(spec.stages) for b in range(len(stage.modules))]
    order = spec.module_names()
    blocks = dict(zip(order, places, strict=True))
    return lambda key: reference.key(key, blocks, order)


def torchvision_key(key: str) -> str:
    """The sandbox name of a torchvision GoogLeNet key in googlenet.yaml's layout (stage = the digit
    - 3, block = the letter), for callers without a network; `key_map` maps any reference."""
    if key.startswith(("conv1.", "conv2.", "conv3.")):
        return f"stem.{key}"
    if key.startswith("fc."):
        return f"head.{key}"
    if match := re.match(r"^inception(\d)([a-z])\.branch(\d)\.", key):
        stage, block, branch = int(match[1]) - 3, ord(match[2]) - ord("a"), int(match[3]) - 1
        return f"stages.{stage}.blocks.{block}.branches.{branch}.{key[match.end() :]}"
    if match := re.match(r"^aux(\d)\.", key):
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


def read_weights(path: str | Path, *, device: str | torch.device = "cpu", what: str = "weights") -> dict[str, Tensor]:
    """The state dict a weights file holds, the one reader of them all (runs, `--weights`, `train.init`,
    the references'): safetensors by its suffix, anything else as torch.save wrote it (tensors only,
    `weights_only`), a sandbox checkpoint as its `model`. Anything unreadable is one line naming the file."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            state: Any = load_file(str(path), device=str(device))
        else:
            state = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError, SafetensorError) as err:  # RuntimeError: a bad device too
        raise SandboxError(f"cannot read {what} {path}: {describe(err)}") from err
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]  # a sandbox checkpoint
    if not isinstance(state, Mapping):
        raise SandboxError(f"{what} {path}: expected a state dict, got {type(state).__name__}")
    if not all(isinstance(value, Tensor) for value in state.values()):
        raise SandboxError(f"{what} {path} holds no state dict (a mapping of names to tensors)")
    return dict(state)


def load_weights(model: nn.Module, path: Path, *, device: str | torch.device = "cpu", unfit: str | None = None) -> None:
    """Load a weights file into `model`; aux heads may be absent (exports leave them out), nothing else.
    `unfit` begins the error when the tensors do not fit (default: the file does not fit the spec's network)."""
    state = read_weights(path, device=device)
    misfit = state_misfit(state, model, optional="aux.")
    if misfit is not None:
        begins = unfit or f"{path} does not fit the spec's network"
        raise SandboxError(f"{begins}: {misfit}")
    model.load_state_dict(state, strict=False)


def load_reference_weights(model: nn.Module, weights: str | Path | Mapping[str, Tensor], library: str) -> None:
    """Load a torchvision or timm state dict (a file or a mapping) of one of the references into `model`.

    Auxiliary-classifier weights are skipped when the model has no aux heads, as torchvision does
    when it is built with `aux_logits=False`.
    """
    state = weights if isinstance(weights, Mapping) else read_weights(weights, what=f"{library} weights")
    rename = key_map(library, model, state)
    try:
        mapped = {rename(key): value for key, value in state.items()}
    except SandboxError as err:
        raise SandboxError(f"{library} weights do not fit this network: {err}") from err
    if not any(key.startswith("aux.") for key in model.state_dict()):
        mapped = {key: value for key, value in mapped.items() if not key.startswith("aux.")}
    problem = state_misfit(mapped, model)
    if problem is not None:
        raise SandboxError(f"{library} weights do not fit this network: {problem}")
    model.load_state_dict(mapped)
