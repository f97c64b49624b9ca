"""Parameters and FLOPs, counted on the meta device (no memory, no compute).

The one convention, stated wherever a figure is printed (`FLOPS_CONVENTION`): forward FLOPs per
image at the spec's input size, 2 per multiply-add, as `torch.utils.flop_counter.FlopCounterMode`
counts them (convolutions and matrix products; pooling, norms and activations count 0).
Auxiliary heads are training-only: their rows are shown, but they are not in the totals.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sandbox.model.blocks import Stage
from sandbox.model.builder import Head, InceptionNet, MetaNorms, Shape, _inception, _make, build
from sandbox.spec.load import Spec, load_spec
from sandbox.spec.schema import Call, branch_label

FLOPS_CONVENTION = (
    "FLOPs: forward, per image at the spec's input size, 2 per multiply-add "
    "(torch.utils.flop_counter.FlopCounterMode); aux heads are training-only and not in the totals"
)


def readable(number: int) -> str:
    """A count as people say it: exact below a million ("4,858"), else three figures and a prefix
    ("6.62 M", "1.20 G"): "0.00 M params" hid a small network's size entirely."""
    for scale, prefix in ((1e9, "G"), (1e6, "M")):
        if number >= scale:
            return f"{number / scale:,.2f} {prefix}"
    return f"{number:,}"


@dataclass(frozen=True)
class ModuleCount:
    name: str
    kind: str
    shape: tuple[int, ...]
    params: int
    flops: int


@dataclass(frozen=True)
class Counts:
    params: int
    flops: int
    modules: tuple[ModuleCount, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"params": self.params, "flops": self.flops, "modules": [asdict(m) for m in self.modules]}


def count(spec: Spec | str | Path | Mapping[str, Any]) -> Counts:
    """Count a spec's parameters and per-image forward FLOPs, per module and in total."""
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    model = build(spec, device="meta")
    rows = _rows(model)
    shapes: dict[str, tuple[int, ...]] = {}
    flops: dict[str, int] = {}
    with FlopCounterMode(display=False) as counter:
        # Rows run one after another, so each one's FLOPs are the counter's growth across it.
        def start(label: str) -> None:
            flops[label] = -counter.get_total_flops()

        def finish(label: str, out: torch.Tensor) -> None:
            flops[label] += counter.get_total_flops()
            shapes[label] = tuple(out.shape[1:])

        hooks = []
        for label, _, module in rows:
            hooks.append(module.register_forward_pre_hook(lambda *_, label=label: start(label)))
            hooks.append(module.register_forward_hook(lambda _m, _i, out, label=label: finish(label, out)))
        with torch.no_grad(), MetaNorms():
            model.eval().forward_with_aux(torch.empty(1, spec.channels, spec.size, spec.size, device="meta"))
        for hook in hooks:
            hook.remove()
    modules = tuple(
        ModuleCount(label, kind, shapes[label], sum(p.numel() for p in module.parameters()), flops[label])
        for label, kind, module in rows
    )
    inference = [m for m in modules if m.kind != "aux"]
    return Counts(params=sum(m.params for m in inference), flops=sum(m.flops for m in inference), modules=modules)


class PartCounts:
    """`count(spec)`'s totals, part by part, each part's count cached by what decides it (its plugin
    call or module, and its input shape): a search that counts thousands of candidates drawn from one
    space builds each distinct stem, downsample and module once (about 1 ms a candidate, not 40).
    Specs with auxiliary heads or a convolutional head are counted by `count` itself."""

    def __init__(self) -> None:
        self._parts: dict[str, tuple[int, int, Shape]] = {}

    def __call__(self, spec: Spec) -> Counts:
        if spec.aux or not spec.fc:
            return count(spec)
        shape: Shape = (spec.channels, spec.size, spec.size)
        flops = params = 0
        for key, make in _parts(spec):
            part_flops, part_params, shape = self._part(f"{key}@{shape}", make, shape)
            flops, params = flops + part_flops, params + part_params
        return Counts(params + _head_params(shape[0], spec.classes), flops + 2 * shape[0] * spec.classes, ())

    def _part(self, key: str, make: Make, shape: Shape) -> tuple[int, int, Shape]:
        if key not in self._parts:
            with torch.device("meta"):
                module, out = make(shape)
            with FlopCounterMode(display=False) as counter, torch.no_grad(), MetaNorms():
                module.eval()(torch.empty(1, *shape, device="meta"))
            self._parts[key] = (counter.get_total_flops(), sum(p.numel() for p in module.parameters()), out)
        return self._parts[key]


Make = Callable[[Shape], tuple[nn.Module, Shape]]


def _parts(spec: Spec) -> Iterator[tuple[str, Make]]:
    """The spec's parts before the head in forward order: what decides each one's count, and its maker."""

    def call_key(call: Call) -> str:
        return f"{call.plugin.kind}:{call.plugin.name}:{json.dumps(call.params, sort_keys=True, default=str)}"

    yield call_key(spec.stem), functools.partial(_make, spec.stem, what="stem")
    for stage in spec.stages:
        if stage.downsample is not None:
            yield call_key(stage.downsample), functools.partial(_make, stage.downsample, what="downsample")
        for module in stage.modules:
            branches = [call_key(b) if isinstance(b, Call) else repr(b) for b in module.branches]
            settings = (module.stride, module.padding, module.combine, module.scale, module.act)
            yield f"module:{branches}:{settings}", functools.partial(_inception, module)


@functools.cache
def _head_params(channels: int, classes: int) -> int:
    return sum(p.numel() for p in Head(channels, classes, 0.0).parameters())


def _rows(model: InceptionNet) -> list[tuple[str, str, nn.Module]]:
    """The network's parts in forward order, each with a label and a kind."""
    spec = model.spec
    rows: list[tuple[str, str, nn.Module]] = [("stem", f"stem {spec.stem.type}", model.stem)]
    stages = cast("Iterable[Stage]", model.stages)  # nn.ModuleList is not generic
    for s, (stage, stage_spec) in enumerate(zip(stages, spec.stages, strict=True)):
        if stage_spec.downsample is not None:
            rows.append((f"stage{s}.downsample", f"downsample {stage_spec.downsample.type}", stage.downsample))
        for block, module_spec in zip(stage.blocks, stage_spec.modules, strict=True):
            kinds = "+".join(map(branch_label, module_spec.branches))
            combine = "" if module_spec.combine == "concat" else f" residual x{module_spec.scale:g}"
            stride = "" if module_spec.stride == 1 else f" /{module_spec.stride}"
            stride += "" if module_spec.padding is None else f" pad {module_spec.padding}"
            rows.append((module_spec.name, f"inception{stride}{combine} {kinds}", block))
    rows.append(("head", "head", model.head))
    for (s, b), head in zip(model.aux_taps, model.aux, strict=True):  # in forward order, not the spec's
        rows.append((f"aux@{spec.stages[s].modules[b].name}", "aux", head))
    return rows


def format_table(spec: Spec, counts: Counts) -> str:
    """The per-module table `sandbox show` prints, with totals and the FLOP convention."""
    header = f"{'module':<22} {'kind':<44} {'output':>14} {'params':>12} {'FLOPs':>15}"
    lines = [f"{spec.name}: input {spec.channels}x{spec.size}x{spec.size}, {spec.classes} classes", header]
    lines.append("-" * len(header))
    for m in counts.modules:
        shape = "x".join(map(str, m.shape))
        kind = m.kind if len(m.kind) <= 44 else m.kind[:41] + "..."
        lines.append(f"{m.name:<22} {kind:<44} {shape:>14} {m.params:>12,} {m.flops:>15,}")
    lines.append("-" * len(header))
    lines.append(f"{'total':<22} {'':<44} {'':>14} {counts.params:>12,} {counts.flops:>15,}")
    lines.append(f"= {readable(counts.params)} params, {counts.flops / 1e6:,.1f} MFLOPs per image")
    lines.append(FLOPS_CONVENTION)
    return "\n".join(lines)
