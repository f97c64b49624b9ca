"""Built modules → plain-torch constructor code, so the exported file needs neither timm nor sandbox.

`LayerWriter.translate` walks a plugin's module tree: standard `torch.nn` layers are rewritten as
their constructor calls (arguments read back from the layer and checked by rebuilding it),
`nn.Sequential` recursively, timm's `ConvNormAct` (what `sandbox.layers.conv_norm_act` makes) as a
small `ConvBNAct` class emitted into the file with identical state-dict keys, and timm's activations
as their torch twins. Anything else returns None, and the exporter carries the plugin's own code.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from timm.layers import BatchNormAct2d, ConvNormAct
from timm.layers import activations as timm_act
from torch import nn

from sandbox.export.code import Code, Imports, call, literal, render

LITERALS = (bool, int, float, str, type(None))
SIZE_ARGS = ("kernel_size", "stride", "padding", "dilation", "output_size")  # (k, k) may be written k
SKIPPED_ARGS = ("device", "dtype")

# timm's activations with exact torch equivalents (same maths, same state-dict keys).
TIMM_TWINS: dict[type, Callable[[nn.Module], nn.Module]] = {
    timm_act.GELU: lambda m: nn.GELU(),
    timm_act.GELUTanh: lambda m: nn.GELU(approximate="tanh"),
    timm_act.Sigmoid: lambda m: nn.Sigmoid(),
    timm_act.Tanh: lambda m: nn.Tanh(),
    timm_act.PReLU: lambda m: nn.PReLU(cast(timm_act.PReLU, m).num_parameters),
}


@dataclass
class ConvBlock:
    """A conv → (batch norm →) activation class emitted into the file, and every place it is used.

    Knobs whose value is the same everywhere in the network are written into the class as
    constants; the others become keyword parameters defaulting to their most common value. So a
    network with one activation and one eps reads `ConvBNAct(64, 96, 3)`, as a person would write it.
    """

    name: str
    norm: bool
    uses: list[tuple[Code, dict[str, str]]] = field(default_factory=list)

    KNOBS = ("stride", "padding", "dilation", "groups", "eps", "act")
    TYPES = {
        "stride": "int",
        "padding": "int | tuple[int, int] | None",
        "dilation": "int",
        "groups": "int",
        "eps": "float",
        "act": "nn.Module | None",
    }

    def use(self, conv: nn.Conv2d, knobs: dict[str, str]) -> Code:
        height, width = conv.kernel_size
        kernel = str(height) if height == width else f"({height}, {width})"
        code = call(self.name, str(conv.in_channels), str(conv.out_channels), kernel)
        self.uses.append((code, knobs))
        return code

    def definition(self) -> str:
        """The class source; also completes each use's call with the knobs that vary (call it once)."""
        fixed: dict[str, str] = {}
        params: dict[str, str] = {}
        for knob in (k for k in self.KNOBS if k in self.uses[0][1]):
            counts = Counter(values[knob] for _, values in self.uses)
            common = counts.most_common(1)[0][0]
            (fixed if len(counts) == 1 else params)[knob] = common
            for code, values in self.uses:
                if knob in params and values[knob] != common:
                    code.items.append((knob, values[knob]))
        name = {**fixed, **{k: k for k in params}}  # what the class body writes for each knob
        pairs = any(str(code.items[2][1]).startswith("(") for code, _ in self.uses)  # some kernel is (height, width)
        arguments = ["in_channels: int", "out_channels: int", f"kernel: {'int | tuple[int, int]' if pairs else 'int'}"]
        arguments += [f"{k}: {self.TYPES[k]} = {'None' if k == 'act' else v}" for k, v in params.items()]
        conv_args = {k: name[k] for k in ("stride", "dilation", "groups") if name[k] != "1"}
        conv_args |= {"padding": "padding", "bias": str(not self.norm)}
        act = f"act if act is not None else {params['act']}" if "act" in params else fixed["act"]
        lines = [
            f"class {self.name}(nn.Module):",
            f'    """{self.summary()}"""',
            "",
            *render(call("def __init__", "self", *arguments), 1, suffix=" -> None:"),
            "        super().__init__()",
            *_padding_lines(name["padding"], name["stride"], name["dilation"], pairs),
            *render(call("nn.Conv2d", "in_channels", "out_channels", "kernel", **conv_args), 2, prefix="self.conv = "),
        ]
        if self.norm:
            eps = "" if name["eps"] == "1e-05" else f", eps={name['eps']}"
            lines.append(f"        self.bn = nn.BatchNorm2d(out_channels{eps})")
        lines += [
            f"        self.act = {act}",
            "",
            "    def forward(self, x: Tensor) -> Tensor:",
            "        return self.act(self.bn(self.conv(x)))" if self.norm else "        return self.act(self.conv(x))",
        ]
        return "\n".join(lines)

    def summary(self) -> str:
        if self.norm:
            return "Convolution, batch norm, activation: the basic layer (timm's ConvNormAct, same state-dict keys)."
        return "Convolution with bias, then activation: the basic layer without batch norm (as in the 2014 paper)."


def _padding_lines(padding: str, stride: str, dilation: str, pairs: bool) -> list[str]:
    """The class body's `padding = ...`: timm's symmetric padding where `padding` is None (per side for pairs)."""
    keeps = "keeps height and width" if stride == "1" else "symmetric, as timm pads"
    if padding not in ("None", "padding"):
        return [f"        padding = {padding}"]
    if pairs:
        symmetric = f"tuple({_padding('k', stride, dilation)} for k in kernel)"
        normalize = ["kernel = (kernel, kernel) if isinstance(kernel, int) else kernel"]
    else:
        symmetric, normalize = _padding("kernel", stride, dilation), []
    if padding == "None":
        return [f"        {line}" for line in normalize] + [f"        padding = {symmetric}  # {keeps}"]
    return [f"        if padding is None:  # {keeps}"] + [
        f"            {line}" for line in [*normalize, f"padding = {symmetric}"]
    ]


def _padding(kernel: str, stride: str, dilation: str) -> str:
    """timm's symmetric padding, ((stride - 1) + dilation * (kernel - 1)) // 2, minus the ones."""
    span = f"{kernel} - 1" if dilation == "1" else f"{dilation} * ({kernel} - 1)"
    return f"({span}) // 2" if stride == "1" else f"({stride} - 1 + {span}) // 2"


class LayerWriter:
    """Translates module trees into constructor code and collects the classes and imports it needs."""

    def __init__(self, imports: Imports) -> None:
        self.imports = imports
        self.blocks = {True: ConvBlock("ConvBNAct", norm=True), False: ConvBlock("ConvAct", norm=False)}

    def translate(self, module: nn.Module) -> Code | None:
        """Constructor code building an equivalent module with the same state-dict keys, or None."""
        kind = type(module)
        if type(module) is ConvNormAct:
            return self._conv_norm_act(module)
        if type(module) is nn.Sequential:
            conv_act = self._conv_act(module) if list(dict(module.named_children())) == ["conv", "act"] else None
            return conv_act if conv_act is not None else self._sequential(module)
        if kind in TIMM_TWINS:
            return self.translate(TIMM_TWINS[kind](module))
        return _torch_layer(module)

    def definitions(self) -> list[str]:
        """Source of each emitted layer class that is used, in a fixed order."""
        return [block.definition() for block in self.blocks.values() if block.uses]

    def _sequential(self, module: nn.Sequential) -> Code | None:
        children = dict(module.named_children())
        translated = {name: self.translate(child) for name, child in children.items()}
        parts = {name: part for name, part in translated.items() if part is not None}
        if len(parts) < len(translated):
            return None
        if list(children) == [str(i) for i in range(len(children))]:
            return call("nn.Sequential", *parts.values())
        if not all(name.isidentifier() for name in children):
            return None
        self.imports.add("collections", "OrderedDict")
        # Any: mypy sees that a child named `comment` would bind call()'s own `comment: str`
        return call("nn.Sequential", call("OrderedDict", **cast("dict[str, Any]", parts)))

    def _conv_norm_act(self, module: ConvNormAct) -> Code | None:
        bn = module.bn
        if getattr(module, "aa", None) is not None or type(bn) is not BatchNormAct2d:
            return None
        plain_bn = bn.affine and bn.bias is not None and bn.track_running_stats and bn.momentum == 0.1
        plain_bn = plain_bn and isinstance(bn.drop, nn.Identity)
        knobs = self._conv_knobs(module.conv, bias=False, act=bn.act)
        if knobs is None or not plain_bn:
            return None
        return self.blocks[True].use(module.conv, {**knobs, "eps": repr(bn.eps)})

    def _conv_act(self, module: nn.Sequential) -> Code | None:
        conv, act = module.get_submodule("conv"), module.get_submodule("act")
        knobs = self._conv_knobs(conv, bias=True, act=act)
        return None if knobs is None else self.blocks[False].use(cast(nn.Conv2d, conv), knobs)  # _conv_knobs checked

    def _conv_knobs(self, conv: nn.Module, *, bias: bool, act: nn.Module) -> dict[str, str] | None:
        """The knobs of a conv with one stride and dilation as code (padding None where it is timm's
        symmetric one), or None if it is not such a conv."""
        if type(conv) is not nn.Conv2d or (conv.bias is not None) != bias or conv.padding_mode != "zeros":
            return None
        (s, s2), (d, d2), padding = conv.stride, conv.dilation, conv.padding
        if s != s2 or d != d2 or isinstance(padding, str):
            return None
        symmetric = tuple((s - 1 + d * (k - 1)) // 2 for k in conv.kernel_size)
        explicit = str(padding[0]) if padding[0] == padding[1] else str(tuple(padding))
        act_code = self.translate(act)
        if act_code is None:
            return None
        return {
            "stride": str(s),
            "padding": "None" if padding == symmetric else explicit,
            "dilation": str(d),
            "groups": str(conv.groups),
            "act": act_code.flat(),
        }


def timm_layer_without_twin(module: nn.Module) -> str | None:
    """The class name of a timm layer in `module` that has no plain-torch translation, if any.

    Carrying the plugin's code would not help there: the torch-only `conv_norm_act` it would call
    knows batch norm only, so such a network cannot become a torch-only file at all.
    """
    known = (ConvNormAct, BatchNormAct2d, *TIMM_TWINS)
    for layer in module.modules():
        if type(layer).__module__.startswith("timm.") and type(layer) not in known:
            return type(layer).__name__
    return None


def _torch_layer(module: nn.Module) -> Code | None:
    """`nn.Name(args)` for a leaf layer of torch.nn, its arguments read back from its attributes.

    The shortest form (defaults dropped, `(3, 3)` as `3`, required arguments positional) is
    rebuilt and compared with the original; the full form is the fallback; neither matching
    means the layer keeps state its constructor does not set, and it is not translated.
    """
    kind = type(module)
    if getattr(nn, kind.__name__, None) is not kind or next(module.children(), None) is not None:
        return None
    params = [
        p
        for p in list(inspect.signature(kind.__init__).parameters.values())[1:]
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in SKIPPED_ARGS
    ]
    values = {}
    for p in params:
        if not hasattr(module, p.name):
            if p.default is p.empty:
                return None
            continue
        value = getattr(module, p.name)
        is_bias = p.name == "bias" and isinstance(value, torch.Tensor | type(None))
        values[p.name] = (value is not None) if is_bias else value  # `bias=` asks for a bias tensor
    if not all(_is_literal(v) for v in values.values()):
        return None
    full = call(f"nn.{kind.__name__}", **{k: literal(v) for k, v in values.items()})
    for code in (_shortest_call(kind, params, values), full):
        if _rebuilds(code, module):
            return code
    return None


def _shortest_call(kind: type, params: list[inspect.Parameter], values: dict[str, object]) -> Code:
    args: list[str] = []
    kwargs: dict[str, str] = {}
    positional = True
    for p in params:
        if p.name not in values:
            positional = False
            continue
        value = values[p.name]
        if p.name in SIZE_ARGS and isinstance(value, tuple) and value and len(set(value)) == 1:
            value = value[0]
        if p.default is not p.empty and value == p.default and type(value) is type(p.default):
            positional = False
            continue
        if positional and p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD:
            args.append(literal(value))
        else:
            positional = False
            kwargs[p.name] = literal(value)
    return call(f"nn.{kind.__name__}", *args, **kwargs)


def _rebuilds(code: Code, module: nn.Module) -> bool:
    """Whether `code` builds a layer with the same settings and parameter shapes as `module`."""
    try:
        rebuilt = eval(code.flat(), {"nn": nn})  # our own generated constructor call, not user input
    except Exception:
        return False
    shapes = {k: v.shape for k, v in module.state_dict().items()}
    return _settings(rebuilt) == _settings(module) and shapes == {k: v.shape for k, v in rebuilt.state_dict().items()}


def _settings(module: nn.Module) -> dict[str, object]:
    return {k: v for k, v in vars(module).items() if not k.startswith("_") and k != "training"}


def _is_literal(value: object) -> bool:
    if isinstance(value, tuple | list):
        return all(_is_literal(v) for v in value)
    return isinstance(value, LITERALS)
