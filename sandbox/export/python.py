"""`--format py`: one Python file that needs only torch and reads like code a person wrote.

Layout of the file: a docstring (what the network is, its size, accuracy and where it was measured,
the per-module table `sandbox show` prints), the input contract as constants, one class per building
block the network uses, carried plugin code if any, then `build()`, whose body is the architecture
as a table (one line per branch with its widths, a comment naming the spec's plugin), `load()` and
`predict()`. Before it is written, the file is run and must reproduce the sandbox network exactly.
"""

from __future__ import annotations

import inspect
import sys
import textwrap
import types
from collections.abc import Iterable
from pathlib import Path
from typing import cast

import torch
from torch import Tensor, nn

from sandbox.errors import SandboxError
from sandbox.export.carry import LAYERS_STANDIN, Carrier
from sandbox.export.code import LINE_LENGTH, Code, Imports, call, listing, literal, render
from sandbox.export.layers import LayerWriter, timm_layer_without_twin
from sandbox.export.source import Exportable
from sandbox.model.blocks import ALWAYS_EXPORTED, EXPORTED, ConvHead, Inception, ResidualInception, Split, Stage
from sandbox.model.builder import InceptionNet
from sandbox.model.flops import Counts, count, format_table
from sandbox.spec.load import Call, Spec
from sandbox.spec.schema import Branch, ModuleSpec

WEIGHTS_SUFFIX = ".pt"  # torch.save'd state dict: torch alone reads it, with weights_only=True
TOLERANCE = 1e-5  # max abs difference from the sandbox network, relative to the output's scale
RESERVED = {
    "CHANNELS", "SIZE", "MEAN", "STD", "CLASSES", "WEIGHTS", "ConvBNAct", "ConvAct", "Inception", "Stage",
    "Head", "InceptionNet", "build", "load", "predict", "NO_NORM", "ACTIVATIONS", "conv_norm_act",
    "ResidualInception", "Split", "ConvHead",
}  # fmt: skip

NETWORK = '''
class InceptionNet(nn.Module):
    """Stem, stages, head. Takes float images in [0, 1] and normalizes them itself with MEAN and STD."""

    def __init__(self, stem: nn.Module, stages: list[Stage], head: nn.Module) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, -1, 1, 1), persistent=False)
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem((x - self.mean) / self.std)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)
'''.strip()

LOAD = '''
def load(weights: str | Path | None = None, device: str | torch.device = "cpu") -> InceptionNet:
    """The network with trained weights, in eval mode: from `weights`, else from WEIGHTS beside this file.

    A .pt file is read with torch.load(weights_only=True); a .safetensors file needs the safetensors package.
    """
    path = Path(weights) if weights is not None else WEIGHTS
    {missing}if path.suffix == ".safetensors":
        # safetensors is optional: needed only for weights saved in that format
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    model = build()
    model.load_state_dict(state)
    return model.to(device).eval()


def predict(images: Tensor, model: nn.Module | None = None, top: int = 3) -> list[list[tuple[str, float]]]:
    """Per image, the `top` most likely classes by name with their probabilities, most likely first.

    `images`: float tensor (N, CHANNELS, SIZE, SIZE), or one (CHANNELS, SIZE, SIZE), values in [0, 1] and
    not normalized (the network does it, with MEAN and STD). Anything else is a ValueError saying what it got,
    since the network would answer it confidently and wrongly: an 8-bit (uint8) tensor too, refused rather
    than divided by 255 here, so that no guess about a tensor's scale is ever made silently.
    `model` defaults to load(); pass it in when predicting repeatedly.
    """
    batch = images.unsqueeze(0) if images.dim() == 3 else images
    if batch.dim() != 4 or tuple(batch.shape[1:]) != (CHANNELS, SIZE, SIZE):
        raise ValueError(f"predict takes images (N, {CHANNELS}, {SIZE}, {SIZE}), not {tuple(images.shape)}")
    if not batch.is_floating_point():
        raise ValueError(f"predict takes float images in [0, 1], not {images.dtype}: pass images.float() / 255")
    low, high = (batch.min().item(), batch.max().item()) if batch.numel() else (0.0, 1.0)
    if not (low >= 0 and high <= 1):  # NaN fails too
        raise ValueError(
            f"predict takes float images in [0, 1], not [{low:g}, {high:g}]: divide 8-bit values by 255, "
            "and leave normalizing to the network"
        )
    model = model if model is not None else load()
    with torch.inference_mode():
        probabilities = model(batch.float().to(next(model.parameters()).device)).softmax(dim=1)
    values, indices = probabilities.topk(min(top, len(CLASSES)), dim=1)
    return [
        [(CLASSES[i], p) for p, i in zip(row_values, row_indices, strict=True)]
        for row_values, row_indices in zip(values.tolist(), indices.tolist(), strict=True)
    ]
'''.strip()

MISSING_WEIGHTS = """if path is None:
        raise FileNotFoundError("exported without trained weights: use build(), or load(weights=FILE)")
    """


def write_python(exportable: Exportable, out: Path) -> list[Path]:
    """Write the file and, for a trained network, its weights beside it (`out` with `.pt`)."""
    if out.suffix != ".py":
        raise SandboxError(f"--out {out}: a Python file must end in .py")
    text = python_source(exportable, out)
    state = exportable.state_dict()
    check_reproduces(text, exportable, state)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    if exportable.weights_origin is None:
        return [out]
    torch.save(state, out.with_suffix(WEIGHTS_SUFFIX))
    return [out, out.with_suffix(WEIGHTS_SUFFIX)]


def python_source(exportable: Exportable, out: Path) -> str:
    """The text of the standalone file that will be written to `out`."""
    spec, model = exportable.spec, exportable.model
    imports = Imports()
    for module, name in (("__future__", "annotations"), ("pathlib", "Path"), ("torch", None), ("torch", "Tensor")):
        imports.add(module, name)
    imports.add("torch", "nn")
    layers = LayerWriter(imports)
    carrier = Carrier(imports, RESERVED)
    counts = count(spec)
    network = _network(model, spec, {m.name: m.shape for m in counts.modules}, layers, carrier)
    classes = layers.definitions()  # completes the layer calls in `network`, so before rendering it
    carried = carrier.blocks()  # adds the carried code's imports, so before rendering them
    build = [
        "def build() -> InceptionNet:",
        '    """The network, untrained: one line per branch, with its widths (in → out channels)."""',
        *render(network, 1, prefix="return "),
    ]
    trained = exportable.weights_origin is not None
    weights = f'Path(__file__).with_suffix("{WEIGHTS_SUFFIX}")' if trained else "None"
    header = "\n\n".join(
        [
            _docstring(exportable, counts, out),
            "\n".join(imports.render()),
            _constants(spec, exportable.classes, weights),
        ]
    )
    parts = [
        header,
        *([LAYERS_STANDIN] if carrier.needs_layers else []),
        *classes,
        *(textwrap.dedent(inspect.getsource(block)).strip() for block in _blocks_used(model)),
        NETWORK,
        *carried,
        "\n".join(build),
        LOAD.replace("{missing}", "" if trained else MISSING_WEIGHTS),
    ]
    return "\n\n\n".join(parts) + "\n"


def check_reproduces(text: str, exportable: Exportable, state: dict[str, Tensor]) -> None:
    """Run the generated file and compare it with the sandbox network; a mismatch is an exporter bug."""
    module = types.ModuleType("sandbox_export_check")
    module.__file__ = "exported.py"
    sys.modules[module.__name__] = module  # classes (dataclasses in carried code) look their module up
    try:
        exec(compile(text, "exported.py", "exec"), module.__dict__)  # the file we just generated
        exported = module.build()
        exported.load_state_dict(state)
    except Exception as err:
        raise SandboxError(f"the exported file does not build: {type(err).__name__}: {err}") from err
    finally:
        del sys.modules[module.__name__]
    spec = exportable.spec
    images = torch.rand(1, spec.channels, spec.size, spec.size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected, got = exportable.model.eval()(images), exported.eval()(images)
    difference = (expected - got).abs().max().item()
    if difference > TOLERANCE * max(1.0, expected.abs().max().item()):
        raise SandboxError(
            f"the exported file computes something else than the network (max abs difference {difference:.3g}): "
            "an exporter bug, please report it"
        )


def _network(
    model: InceptionNet, spec: Spec, shapes: dict[str, tuple[int, ...]], layers: LayerWriter, carrier: Carrier
) -> Code:
    """`InceptionNet(stem=..., stages=[...], head=...)` with every plugin's module written out."""

    def part(module: nn.Module, plugin_call: Call, in_channels: int, comment: str) -> Code:
        code = layers.translate(module)
        if code is None and (timm_layer := timm_layer_without_twin(module)) is not None:
            raise SandboxError(
                f"{plugin_call.path}: {plugin_call.kind} {plugin_call.type!r} uses timm's {timm_layer}, which has no "
                "torch-only equivalent here (norms: batchnorm or none); export --format pt2 instead"
            )
        if code is None:
            return carrier.carry(plugin_call, in_channels, f"{comment} (carried plugin code)")
        code.comment = comment
        return code

    def branch_code(module: nn.Module, branch: Branch, in_channels: int, size: tuple[int, int]) -> Code:
        """A branch's code; a split's parts are built on the trunk's output, whose width a probe measures."""
        if isinstance(branch, Call):
            return part(module, branch, in_channels, _describe(branch, spec))
        split = cast(Split, module)
        middle, height, width = _output(split.trunk, in_channels, size)
        pairs = zip(split.parts, branch.parts, strict=True)
        parts = [branch_code(module, part_spec, middle, (height, width)) for module, part_spec in pairs]
        trunk = branch_code(split.trunk, branch.trunk, in_channels, size)
        note = f"split: the trunk, then {len(parts)} parts side by side on its {middle} channels"
        return call("Split", trunk, *parts, comment=note)

    channels, height, width = shapes["stem"]
    stem = part(model.stem, spec.stem, spec.channels, f"{_describe(spec.stem, spec)} → {channels}x{height}x{width}")
    stages = []
    model_stages = cast("Iterable[Stage]", model.stages)  # nn.ModuleList is not generic
    for s, (stage, stage_spec) in enumerate(zip(model_stages, spec.stages, strict=True)):
        items: dict[str, Code] = {}
        if stage_spec.downsample is not None:
            new = shapes[f"stage{s}.downsample"]
            note = f"{_describe(stage_spec.downsample, spec)}: {height}x{width} → {new[1]}x{new[2]}"
            items["downsample"] = part(stage.downsample, stage_spec.downsample, channels, note)
            channels, height, width = new
        blocks = []
        start = (height, width)
        for block, module_spec in zip(cast("Iterable[Inception]", stage.blocks), stage_spec.modules, strict=True):
            out = shapes[module_spec.name]
            branches = [
                branch_code(branch, branch_spec, channels, (height, width))
                for branch, branch_spec in zip(block.branches, module_spec.branches, strict=True)
            ]
            note = f"{module_spec.name}: {channels} → {out[0]} channels, {height}x{width} → {out[1]}x{out[2]}"
            if out[1:] == (height, width):
                note = f"{module_spec.name}: {channels} → {out[0]} channels at {height}x{width}"
            blocks.append(_block_code(block, module_spec, branches, layers, note))
            channels, height, width = out
        at = f"at {height}x{width}" if (height, width) == start else f"from {start[0]}x{start[1]} to {height}x{width}"
        note = f"stage {s}: {len(blocks)} Inception module{'s' * (len(blocks) > 1)} {at}"
        stages.append(call("Stage", **items, blocks=listing(blocks), comment=note))
    note = f"global average pool, dropout, linear → {spec.classes} classes"
    head = call("Head", str(channels), str(spec.classes), dropout=repr(spec.dropout), comment=note)
    if isinstance(model.head, ConvHead):
        act: dict[str, Code] = {}
        if not isinstance(model.head.act, nn.Identity):
            if (code := layers.translate(model.head.act)) is None:
                raise SandboxError(f"head.act: activation {spec.head_act!r} has no torch-only equivalent here")
            act["act"] = code
        then = f", {spec.head_act}" if act else ""
        note = f"dropout, 1x1 conv to {spec.classes} classes{then}, global average pool (no linear layer)"
        head = call("ConvHead", str(channels), str(spec.classes), dropout=repr(spec.dropout), **act, comment=note)
    return call("InceptionNet", stem=stem, stages=listing(stages), head=head)


def _block_code(block: Inception, module: ModuleSpec, branches: list[Code], layers: LayerWriter, note: str) -> Code:
    """`Inception(branch, ...)`, or `ResidualInception(branch, ..., project=..., scale=..., act=...)`."""
    if not isinstance(block, ResidualInception):
        return call("Inception", *branches, comment=note)
    project, act = layers.translate(block.project), layers.translate(block.act)
    if project is None or act is None:
        raise SandboxError(f"{module.path}.act: activation {module.act!r} has no torch-only equivalent here")
    note = f"{note}, residual: projected back, scaled by {module.scale:g}, added, then {module.act}"
    return call("ResidualInception", *branches, project=project, scale=repr(module.scale), act=act, comment=note)


def _output(module: nn.Module, channels: int, size: tuple[int, int]) -> tuple[int, int, int]:
    """The (channels, height, width) `module` gives for a `channels`-wide input of `size`, measured in eval mode."""
    training = module.training
    with torch.no_grad():
        _, out, height, width = module.eval()(torch.zeros(1, channels, *size)).shape
    module.train(training)
    return out, height, width


def _blocks_used(model: nn.Module) -> list[type[nn.Module]]:
    """The building blocks the file carries: the ones every file has, and the others this network uses."""
    used = {type(m) for m in model.modules()}
    return [block for block in EXPORTED if block in ALWAYS_EXPORTED or block in used]


def _describe(plugin_call: Call, spec: Spec) -> str:
    """The plugin and the parameters that make it this one (not the spec's defaults or its own)."""
    shared = spec.raw.get("defaults") or {}
    own = {name: p.default for name, p in plugin_call.plugin.params.items()}
    shown = [f"{k}={v}" for k, v in plugin_call.params.items() if shared.get(k, own.get(k)) != v]
    return " ".join([plugin_call.type, *shown])


def _docstring(exportable: Exportable, counts: Counts, out: Path) -> str:
    spec = exportable.spec
    inference = Counts(counts.params, counts.flops, tuple(m for m in counts.modules if m.kind != "aux"))
    weights = (
        f"{out.with_suffix(WEIGHTS_SUFFIX).name} beside this file (from {exportable.weights_origin}); load() reads it"
        if exportable.weights_origin is not None
        else "none: exported untrained; build() gives the network, load(weights=FILE) loads a state dict"
    )
    name = out.stem if out.stem.isidentifier() else "model"
    variable = "net" if name != "net" else "model"
    lines = [
        f"{spec.name}: a GoogLeNet-style network exported by Inception Sandbox. It needs only torch.",
        "",
        f"Input:    float images (N, {spec.channels}, {spec.size}, {spec.size}) in [0, 1]; the network normalizes "
        "them itself (MEAN, STD).",
        f"Size:     {counts.params:,} parameters, {counts.flops:,} FLOPs per image (forward, 2 per multiply-add).",
        f"Accuracy: {exportable.accuracy}",
        f"Weights:  {weights}",
        f"Source:   {exportable.origin}",
        "",
        f"    import {name}",
        f"    {variable} = {name}.load()  # trained network, eval mode",
        f"    {name}.predict(images, {variable})  # per image: [(class name, probability), ...], top 3 first",
        "",
        *format_table(spec, inference).splitlines(),
    ]
    text = "\n".join(wrapped for line in lines for wrapped in _wrap(line))
    return f'"""{in_docstring(text)}\n"""'  # the spec's name and paths may hold quotes and backslashes


def _wrap(line: str) -> list[str]:
    """A docstring line within the line length; a `Label:    text` line continues under its text."""
    indent = " " * 10 if line[:10].rstrip().endswith(":") else ""
    lines = textwrap.wrap(line, LINE_LENGTH, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)
    return lines or [""]


def _constants(spec: Spec, classes: tuple[str, ...] | None, weights: str) -> str:
    names = (
        Code("(", [(None, literal(name)) for name in classes], ",)" if len(classes) == 1 else ")")
        if classes is not None
        else f'tuple(f"class {{i}}" for i in range({spec.classes}))  # the spec names no classes'
    )
    lines = [
        f"CHANNELS = {spec.channels}  # input: float images (N, CHANNELS, SIZE, SIZE) in [0, 1]",
        f"SIZE = {spec.size}",
        f"MEAN = {spec.mean!r}  # per channel; the network normalizes its input itself",
        f"STD = {spec.std!r}",
        *render(names, prefix="CLASSES = "),
        f"WEIGHTS = {weights}  # trained weights, a state dict saved beside this file",
    ]
    return "\n".join(lines)


def in_docstring(text: str) -> str:
    """`text` as it may stand inside a triple-quoted docstring: a `\"\"\"` or a backslash in it would
    otherwise end the docstring early or escape what follows."""
    return text.replace("\\", "\\\\").replace('"', '\\"')
