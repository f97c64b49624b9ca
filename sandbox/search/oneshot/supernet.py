"""The supernet: every alternative of every slot of a space, and a forward pass per chosen subnet.

Weights: an alternative built from the sandbox's own layers (its only layers with weights are the
convolutions, batch norms and linear layers that `conv_norm_act` and torch make) holds one module
at its widest widths and input, and a subnet's call runs the plugin's own module for its widths
(built on the meta device, so its attributes are the narrow ones) on the first k output and input
channels of each tensor: all widths train the same weights, as in Once-for-All. Any other plugin's
alternative holds one module per combination of widths and input width: separate weights, and
nothing asked of the plugin. Batch-norm statistics are shared slices as well, right for no subnet:
`sandbox.search.oneshot.train.recalibrate` measures them for the subnet about to be scored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import get_act_layer
from torch import Tensor, nn
from torch.func import functional_call

from sandbox.search.oneshot.layout import (
    Alternative,
    AltKey,
    Subnet,
    Use,
    Widths,
    alternative_key,
    layout,
    narrow_module,
    params_of,
    select,
    widths_of,
)
from sandbox.spec.load import validate
from sandbox.spec.primitives import lowest, sample

SHARED_LEAVES = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)  # the layers whose channels slice meaningfully


class Holder(nn.Module):
    """The weights of one alternative of one slot: a widest module, or one module per combination."""

    def __init__(self, alternative: Alternative) -> None:
        super().__init__()
        in_channels, widths = alternative.widest
        call = alternative.call
        wide = call.plugin.factory(in_channels, **{**call.params, **widths})
        self.wide: nn.Module | None = wide if _sliceable(wide, alternative) else None
        self._wide_state: dict[str, Tensor] | None = None  # the wide module's tensors by name
        self._narrows: dict[nn.Module, Narrow] = {}
        self.separate = nn.ModuleList()
        self.index: dict[tuple[int, Widths], int] = {}
        if self.wide is None:
            for combo, each in alternative.combos.items():
                self.index[combo] = len(self.separate)
                self.separate.append(each.plugin.factory(combo[0], **each.params))

    def sliced(self, narrow: nn.Module) -> dict[str, Tensor]:
        """The wide module's tensors cut to the narrow module's shapes (views: gradients and
        batch-norm updates reach the shared weights)."""
        assert self.wide is not None
        if self._wide_state is None:
            self._wide_state = _state(self.wide)
        wide, shapes = self._wide_state, self._narrow(narrow).shapes
        return {name: _prefix(wide[name], shape) for name, shape in shapes}

    def norms(self, narrow: nn.Module) -> tuple[nn.BatchNorm2d, ...]:
        return self._narrow(narrow).norms

    def _narrow(self, narrow: nn.Module) -> Narrow:
        """What a forward pass reads of a narrow module, looked up once: thousands of subnets are scored."""
        if narrow not in self._narrows:
            norms = tuple(m for m in narrow.modules() if isinstance(m, nn.BatchNorm2d))
            self._narrows[narrow] = Narrow(tuple((n, t.shape) for n, t in _state(narrow).items()), norms)
        return self._narrows[narrow]

    def _apply(self, fn: Any, recurse: bool = True) -> Holder:
        """`.to()` and the like replace buffers: the wide tensors are looked up afresh after it."""
        self._wide_state = None
        return super()._apply(fn, recurse)


@dataclass(frozen=True)
class Narrow:
    shapes: tuple[tuple[str, torch.Size], ...]  # its tensors' names and shapes
    norms: tuple[nn.BatchNorm2d, ...]


def _state(module: nn.Module) -> dict[str, Tensor]:
    return dict(module.named_parameters()) | dict(module.named_buffers())


def _prefix(tensor: Tensor, shape: torch.Size) -> Tensor:
    return tensor[tuple(slice(0, n) for n in shape)] if tensor.dim() else tensor


def _sliceable(wide: nn.Module, alternative: Alternative) -> bool:
    """Whether every width of the alternative is the wide module cut to size: the same tensors,
    none larger, and only layers whose channels mean the same when cut."""
    for module in wide.modules():
        own = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
        if own and not isinstance(module, SHARED_LEAVES):
            return False
    shapes = {name: tensor.shape for name, tensor in _state(wide).items()}
    for (in_channels, _), call in alternative.combos.items():
        narrow = _state(narrow_module(call, in_channels))
        if narrow.keys() != shapes.keys():
            return False
        for name, tensor in narrow.items():
            if tensor.dim() != len(shapes[name]) or any(n > w for n, w in zip(tensor.shape, shapes[name], strict=True)):
                return False
    return True


class Supernet(nn.Module):
    """One network holding every candidate of a search space; `forward(x, subnet)` runs one."""

    mean: Tensor
    std: Tensor

    def __init__(self, space: Mapping[str, Any], base: Path) -> None:
        super().__init__()
        self.space, self.base = space, base
        found = layout(space, base)
        first = validate({k: v for k, v in sample(space, lowest).items() if k != "search"}, base=base)
        self.first = first  # the space's first candidate: its input, `train:` and `data:` are every candidate's
        shape = (1, first.channels, 1, 1)
        self.register_buffer("mean", torch.tensor(first.mean).view(shape), persistent=False)
        self.register_buffer("std", torch.tensor(first.std).view(shape), persistent=False)
        self.holders = nn.ModuleList()
        self.where: dict[tuple[str, AltKey], int] = {}
        for slot, alternatives in found.slots.items():
            for key, alternative in alternatives.items():
                self.where[slot, key] = len(self.holders)
                self.holders.append(Holder(alternative))
        self.projections = nn.ModuleDict()
        self.projection_slots: dict[str, str] = {}  # slot → its key in `projections` (no dots allowed there)
        for slot, (widest, out) in found.projections.items():
            self.projection_slots[slot] = str(len(self.projection_slots))
            self.projections[self.projection_slots[slot]] = nn.Conv2d(widest, out, 1)
        self.fc = nn.Linear(found.features, first.classes)
        self.bn_momentum: float | None = 0.1  # what every batch norm of a subnet runs with (None: recalibrating)

    def select(self, params: Mapping[str, Any]) -> Subnet:
        """The subnet a trial with these Optuna params (keys: YAML paths) would train."""
        return select(self.space, params, self.base)

    def select_spec(self, concrete: Mapping[str, Any]) -> Subnet:
        """The subnet whose concrete spec is `concrete` (a trial's spec.yaml, a table's `spec`)."""
        return select(self.space, params_of(self.space, concrete), self.base)

    def forward(self, x: Tensor, subnet: Subnet) -> Tensor:
        x = self.run(subnet.stem, (x - self.mean) / self.std)
        for stage in subnet.stages:
            if stage.downsample is not None:
                x = self.run(stage.downsample, x)
            for module in stage.modules:
                y = torch.cat([self.run(use, x) for use in module.branches], dim=1)
                if module.spec.combine == "residual":
                    project = self.projections[self.projection_slots[module.slot]]
                    assert isinstance(project, nn.Conv2d) and project.bias is not None
                    weight, bias = (
                        project.weight[: module.in_channels, : module.width],
                        project.bias[: module.in_channels],
                    )
                    y = get_act_layer(module.spec.act)()(x + module.spec.scale * F.conv2d(y, weight, bias))
                x = y
        x = F.dropout(F.adaptive_avg_pool2d(x, 1).flatten(1), subnet.spec.dropout, self.training)
        return F.linear(x, self.fc.weight[:, : subnet.features], self.fc.bias)

    def holder(self, use: Use) -> Holder:
        holder = self.holders[self.where[use.slot, alternative_key(use.call)]]
        assert isinstance(holder, Holder)
        return holder

    def run(self, use: Use, x: Tensor) -> Tensor:
        holder = self.holder(use)
        if holder.wide is None:
            return holder.separate[holder.index[use.in_channels, widths_of(use.call)]](x)
        narrow = narrow_module(use.call, use.in_channels)
        if narrow.training != self.training:
            narrow.train(self.training)
        for norm in holder.norms(narrow):
            norm.momentum = self.bn_momentum
        return functional_call(narrow, holder.sliced(narrow), (x,))

    def standalone_state(self, subnet: Subnet) -> dict[str, Tensor]:
        """The subnet's weights keyed as `build(subnet.spec)` names them: inherited weights for
        a standalone network, which then computes what `forward(x, subnet)` does."""
        state: dict[str, Tensor] = {}
        for name, use in subnet.uses():
            holder = self.holder(use)
            if holder.wide is None:
                tensors = _state(holder.separate[holder.index[use.in_channels, widths_of(use.call)]])
            else:
                tensors = holder.sliced(narrow_module(use.call, use.in_channels))
            state |= {f"{name}.{key}": tensor.detach().clone() for key, tensor in tensors.items()}
        for s, stage in enumerate(subnet.stages):
            for b, module in enumerate(stage.modules):
                if module.spec.combine == "residual":
                    project = self.projections[self.projection_slots[module.slot]]
                    assert isinstance(project, nn.Conv2d) and project.bias is not None
                    state[f"stages.{s}.blocks.{b}.project.weight"] = (
                        project.weight[: module.in_channels, : module.width].detach().clone()
                    )
                    state[f"stages.{s}.blocks.{b}.project.bias"] = project.bias[: module.in_channels].detach().clone()
        state["head.fc.weight"] = self.fc.weight[:, : subnet.features].detach().clone()
        state["head.fc.bias"] = self.fc.bias.detach().clone()
        return state
