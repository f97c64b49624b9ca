"""Concrete `Spec` → `InceptionNet`, checking every shape on the meta device as it goes.

Each plugin's module is first made on the meta device and probed with an empty tensor, which
gives its output shape for free and catches a branch that changes height/width or a feature map
that collapses, with the YAML path of the culprit; then the real module is made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
from timm.layers import get_act_layer
from torch import Tensor, nn
from torch.nn import functional
from torch.overrides import TorchFunctionMode

from sandbox.errors import SandboxError, SpecError, describe
from sandbox.model.blocks import ConvHead, Head, Inception, ResidualInception, Split, Stage
from sandbox.model.layers import conv_norm_act
from sandbox.spec.load import AuxSpec, Call, Spec, load_spec
from sandbox.spec.schema import Branch, ModuleSpec, branch_label

Shape = tuple[int, int, int]  # channels, height, width
ModuleT = TypeVar("ModuleT", bound=nn.Module)


class MetaNorms(TorchFunctionMode):
    """Batch norm on meta tensors as a shape check only, while probing and counting: torch has no
    meta kernel for it and decomposes it in Python, at about 5 ms a call (half the time of counting
    Inception-ResNet-v2's 408), for an output of the input's shape and FLOPs that count 0 anyway.
    A norm built for another number of channels is still the error it would be."""

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is functional.batch_norm and args and isinstance(args[0], Tensor) and args[0].device.type == "meta":
            return _meta_batch_norm(*args, **kwargs)
        return func(*args, **kwargs)


def _meta_batch_norm(
    x: Tensor,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    *_: Any,
    **__: Any,
) -> Tensor:
    """What batch norm gives, for shapes: a tensor like `x`, once its statistics fit its channels."""
    channels = x.shape[1] if x.dim() > 1 else 1
    stats = {"running_mean": running_mean, "running_var": running_var, "weight": weight, "bias": bias}
    for name, tensor in stats.items():
        if tensor is not None and tensor.numel() != channels:
            raise RuntimeError(f"batch norm: {name} should contain {channels} elements not {tensor.numel()}")
    return torch.empty_like(x)


class AuxHead(nn.Module):
    """An auxiliary classifier: average pool, 1x1 conv, optionally an unpadded k x k conv and a global
    average pool, flatten, optionally a hidden linear layer and its activation, dropout, linear.
    GoogLeNet's (pool, 1x1, fc 1024, dropout, fc) and Inception-v3's (pool, 1x1, 5x5, global pool, fc)
    are two settings of it. The convs and the hidden layer's activation take the stem's norm and
    activation, so a GELU network has GELU aux heads."""

    def __init__(self, aux: AuxSpec, shape: Shape, classes: int, conv_options: Mapping[str, Any]) -> None:
        super().__init__()
        channels, height, width = shape
        self.pool = nn.AvgPool2d(aux.pool, stride=aux.stride)
        self.conv = conv_norm_act(channels, aux.conv, 1, **conv_options)
        height, width = ((height - aux.pool) // aux.stride + 1), ((width - aux.pool) // aux.stride + 1)
        features = aux.conv
        self.conv2: nn.Module = nn.Identity()  # the layers a setting leaves out are identities
        if aux.conv2:
            self.conv2 = conv_norm_act(aux.conv, aux.conv2, aux.kernel2, padding=0, **conv_options)
            height, width, features = height - aux.kernel2 + 1, width - aux.kernel2 + 1, aux.conv2
        self.global_pool = nn.AdaptiveAvgPool2d(1) if aux.global_pool else nn.Identity()
        features *= 1 if aux.global_pool else height * width
        self.fc1: nn.Module = nn.Identity()
        self.act: nn.Module = nn.Identity()
        if aux.hidden:
            self.fc1 = nn.Linear(features, aux.hidden)
            self.act = get_act_layer(conv_options.get("act", "relu"))(inplace=True)
            features = aux.hidden
        self.dropout = nn.Dropout(aux.dropout)
        self.fc2 = nn.Linear(features, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.global_pool(self.conv2(self.conv(self.pool(x)))).flatten(1)
        return self.fc2(self.dropout(self.act(self.fc1(x))))


class InceptionNet(nn.Module):
    """A GoogLeNet-style network that takes float images in [0, 1] and normalizes them itself."""

    mean: Tensor  # buffers, registered in __init__
    std: Tensor

    def __init__(
        self,
        spec: Spec,
        stem: nn.Module,
        stages: list[Stage],
        head: nn.Module,
        aux: list[tuple[int, int, AuxHead, float]],
    ) -> None:
        super().__init__()
        self.spec = spec
        shape = (1, spec.channels, 1, 1)
        self.register_buffer("mean", torch.tensor(spec.mean).view(shape), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(shape), persistent=False)
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head
        self.aux = nn.ModuleList(head for _, _, head, _ in aux)
        self.aux_taps = tuple((stage, block) for stage, block, _, _ in aux)
        self.aux_weights = tuple(weight for _, _, _, weight in aux)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def forward_with_aux(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Main logits plus one logits tensor per auxiliary head (for the training loss)."""
        aux_logits: list[Tensor] = []
        features = self.features(x, aux_logits)
        return self.head(features), aux_logits

    def features(self, x: Tensor, aux_logits: list[Tensor] | None = None) -> Tensor:
        x = self.stem((x - self.mean) / self.std)
        for s, stage in enumerate(cast("Iterable[Stage]", self.stages)):  # nn.ModuleList is not generic
            x = stage.downsample(x)
            for b, block in enumerate(stage.blocks):
                x = block(x)
                if aux_logits is not None:
                    aux_logits.extend(h(x) for h, tap in zip(self.aux, self.aux_taps, strict=True) if tap == (s, b))
        return x


def build(
    spec: Spec | str | Path | Mapping[str, Any],
    *,
    device: str | torch.device | None = None,
    torchvision_weights: str | Path | Mapping[str, Tensor] | None = None,
    timm_weights: str | Path | Mapping[str, Tensor] | None = None,
) -> InceptionNet:
    """Assemble the network a spec describes; `device="meta"` builds it without memory.

    `torchvision_weights` loads a state dict (a file or a mapping) of torchvision's GoogLeNet or
    Inception-v3, `timm_weights` one of timm's inception_v4 or inception_resnet_v2, through the key
    maps of `sandbox.model.weights`, into specs of their layout (googlenet.yaml, inception_v3.yaml,
    inception_v4.yaml, inception_resnet_v2.yaml).
    """
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    with torch.device(device or "cpu"):
        model = _assemble(spec)
    for library, weights in (("torchvision", torchvision_weights), ("timm", timm_weights)):
        if weights is not None:
            from sandbox.model.weights import load_reference_weights

            load_reference_weights(model, weights, library)
    return model


def _assemble(spec: Spec) -> InceptionNet:
    shape: Shape = (spec.channels, spec.size, spec.size)
    stem, shape = _make(spec.stem, shape, "stem")
    taps = {aux.after: aux for aux in spec.aux}
    stages: list[Stage] = []
    aux_heads: list[tuple[int, int, AuxHead, float]] = []
    for s, stage_spec in enumerate(spec.stages):
        downsample = None
        if stage_spec.downsample is not None:
            downsample, shape = _make(stage_spec.downsample, shape, f"stage {s}'s downsample")
        blocks: list[nn.Module] = []
        for b, module_spec in enumerate(stage_spec.modules):
            block, shape = _inception(module_spec, shape)
            blocks.append(block)
            if module_spec.name in taps:
                aux = taps[module_spec.name]
                aux_heads.append((s, b, _aux_head(aux, shape, spec), aux.weight))
        stages.append(Stage(blocks, downsample))
    if spec.fc:
        head: nn.Module = _checked("classes", "the classifier", lambda: Head(shape[0], spec.classes, spec.dropout))
    else:
        act = _checked("head.act", "the head's activation", lambda: get_act_layer(spec.head_act)(inplace=True))
        head = _checked("classes", "the classifier", lambda: ConvHead(shape[0], spec.classes, spec.dropout, act))
    return InceptionNet(spec, stem, stages, head, aux_heads)


def _inception(module: ModuleSpec, shape: Shape) -> tuple[nn.Module, Shape]:
    """One Inception module and its output shape: its branches must keep the input's height and
    width, or, in a reduction module (a stride or a padding), all give the same reduced size."""
    built = [_branch(branch, shape) for branch in module.branches]
    first, size = module.branches[0], built[0][1][1:]
    for branch, (_, out) in zip(module.branches, built, strict=True):
        if not module.reduces and out[1:] != shape[1:]:
            raise SpecError(
                branch.path,
                f"{_what(branch)} changes height/width {_size(shape)} → {_size(out)}; branches must keep them "
                "(a module with stride or padding reduces)",
            )
        if out[1:] != size:
            raise SpecError(
                branch.path,
                f"{_what(branch)} reduces {_size(shape)} to {_size(out)}, but {_what(first)} ({first.path}) to "
                f"{_size(built[0][1])}; the branches of a reduction module must agree (padding: 0 on some only?)",
            )
    modules = [branch for branch, _ in built]
    width = sum(out[0] for _, out in built)
    if module.combine == "concat":
        return Inception(*modules), (width, *size)
    project = _checked(f"{module.path}.combine", "the residual's projection", lambda: nn.Conv2d(width, shape[0], 1))
    act = _checked(f"{module.path}.act", "the residual's activation", lambda: get_act_layer(module.act)(inplace=True))
    return ResidualInception(*modules, project=project, scale=module.scale, act=act), shape


def _branch(branch: Branch, shape: Shape) -> tuple[nn.Module, Shape]:
    """A branch's module and output shape; a split's parts must keep the height and width its trunk gives."""
    if isinstance(branch, Call):
        return _make(branch, shape, f"branch {branch.type!r}")
    trunk, middle = _branch(branch.trunk, shape)
    parts = [_branch(part, middle) for part in branch.parts]
    for part, (_, out) in zip(branch.parts, parts, strict=True):
        if out[1:] != middle[1:]:
            raise SpecError(
                part.path,
                f"{_what(part)} changes height/width {_size(middle)} → {_size(out)}; "
                "the parts of a split must keep what the trunk gives",
            )
    return Split(trunk, *(module for module, _ in parts)), (sum(out[0] for _, out in parts), *middle[1:])


def _what(branch: Branch) -> str:
    if isinstance(branch, Call):
        return f"branch {branch.type!r} ({branch.plugin.source})"
    return f"split branch {branch_label(branch)!r}"


def _size(shape: Shape) -> str:
    return f"{shape[1]}x{shape[2]}"


def _aux_head(aux: AuxSpec, shape: Shape, spec: Spec) -> AuxHead:
    if min(shape[1:]) < aux.pool:
        raise SpecError(
            f"{aux.path}.pool",
            f"the feature map after {aux.after!r} is {shape[1]}x{shape[2]}, smaller than the pool ({aux.pool})",
        )
    pooled = [(side - aux.pool) // aux.stride + 1 for side in shape[1:]]
    if aux.conv2 and min(pooled) < aux.kernel2:
        raise SpecError(
            f"{aux.path}.kernel2",
            f"the aux head's pool leaves {pooled[0]}x{pooled[1]} after {aux.after!r}, smaller than the "
            f"unpadded {aux.kernel2}x{aux.kernel2} conv",
        )
    conv_options = {k: v for k, v in spec.stem.params.items() if k in ("norm", "act", "norm_eps")}
    return _checked(aux.path, "the aux head", lambda: AuxHead(aux, shape, spec.classes, conv_options))


def _checked(path: str, what: str, make: Callable[[], ModuleT]) -> ModuleT:
    """Build one of the builder's own parts; torch's complaint about an absurd size becomes a SpecError."""
    try:
        return make()
    except Exception as err:
        raise SpecError(path, f"{what} failed to build: {describe(err)}") from err


def _make(call: Call, shape: Shape, what: str) -> tuple[nn.Module, Shape]:
    """Build a plugin's module and learn its output shape from a meta-device probe."""
    factory: Callable[..., nn.Module] = call.plugin.factory

    def create() -> nn.Module:
        try:
            module = factory(shape[0], **call.params)
        except SandboxError:
            raise
        except Exception as err:
            raise SpecError(call.blame(err), f"{what} failed to build: {describe(err)}") from err
        if not isinstance(module, nn.Module):
            raise SpecError(call.path, f"{what} returned {type(module).__name__}, not an nn.Module")
        return module

    with torch.device("meta"):
        probe = create()
        try:
            with torch.no_grad(), MetaNorms():
                out = probe.eval()(torch.empty(2, *shape))  # eval: no batch statistics
            probe.train()
        except Exception as err:
            raise SpecError(
                _collapse_key(call),
                f"{what} cannot take a {shape[0]}x{shape[1]}x{shape[2]} input "
                f"(the feature map may have collapsed): {describe(err)}",
            ) from err
    if not isinstance(out, Tensor) or out.dim() != 4 or min(out.shape[1:]) < 1:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise SpecError(_collapse_key(call), f"{what} produced {got}, not a non-empty (N, C, H, W) feature map")
    real = probe if torch.empty(0).device.type == "meta" else create()
    shapes = [{k: v.shape for k, v in module.state_dict().items()} for module in (probe, real)]
    if shapes[0] != shapes[1]:  # the probe measured another module: the network would fail in training
        raise SpecError(
            call.path,
            f"{what} ({call.plugin.source}) built other layers when called again with the same parameters: "
            "a plugin must build the same module every time",
        )
    return real, (out.shape[1], out.shape[2], out.shape[3])


def _collapse_key(call: Call) -> str:
    """Where a feature map that collapses in a call is blamed: its stride's key when it strides
    (a reduction module's own `stride`, say), else its padding's when that is none, else the call."""
    stride = call.params.get("stride", 1)
    if isinstance(stride, int) and stride > 1:
        return call.sources["stride"]
    return call.sources["padding"] if call.params.get("padding") == 0 else call.path
