"""A validated spec as dataclasses: what the builder, the FLOP counter and the trainer read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sandbox.registry import Plugin
from sandbox.spec.recipe import DataConfig, TrainConfig
from sandbox.spec.search import SearchConfig

TOP_LEVEL_KEYS = (
    "name", "description", "input", "classes", "normalize", "defaults", "plugins",
    "stem", "stages", "head", "aux", "train", "data", "search",
)  # fmt: skip
SPLIT_KEYS = ("trunk", "split")  # a branch with these keys splits instead of calling a plugin
BRANCH_SLOT: dict[str, Any] = {"type": "branch"}  # a branch calls a branch plugin, or splits into branches
BRANCH_SLOT |= {"trunk": BRANCH_SLOT, "split": [BRANCH_SLOT]}
PLUGIN_SLOTS: dict[str, Any] = {
    "stem": "stem",
    "stages": [{"downsample": "downsample", "modules": [{"branches": [BRANCH_SLOT]}]}],
}  # where a spec's plugin calls are: a string (or a mapping's "type") is the kind of the call there, a list one item
MODULE_KEYS = ("name", "branches", "repeat", "stride", "padding", "combine", "scale", "act")
Combine = Literal["concat", "residual"]  # a module's branches concatenated, or that added back to its input
WIDTH_KEYS = ("out", "reduce", "width", "channels")
MAX_INPUT_CHANNELS = 4096  # one mean and std each: a bound keeps a typo from allocating billions
MAX_REPEAT = 256  # modules per `repeat:`, for the same reason
MAX_STAGES = 64  # GoogLeNet has 3 to 5: a bound keeps a generated list from taking gigabytes
MAX_MODULES = 1024  # in the whole network, `repeat:` included, for the same reason


@dataclass(frozen=True)
class Call:
    """One plugin invocation: which plugin, with which parameters, from where in the YAML."""

    plugin: Plugin  # resolved once, when the spec is loaded
    params: dict[str, Any]
    path: str
    sources: dict[str, str]  # each param's own YAML key (`defaults.norm`, say)

    @property
    def kind(self) -> str:
        return self.plugin.kind

    @property
    def type(self) -> str:
        return self.plugin.name

    def blame(self, err: Exception) -> str:
        """The YAML key behind a build failure: the one whose text value the error quotes (timm's
        KeyError for an unknown norm or activation names only the value), else the call itself."""
        message = str(err)
        for key, value in self.params.items():
            if isinstance(value, str) and repr(value) in message:
                return self.sources[key]
        return self.path


@dataclass(frozen=True)
class SplitSpec:
    """A branch that splits: `trunk`, then `parts` side by side on its output, concatenated on
    channels (Inception-v3's Mixed_7b: a 1x1, then a 1x3 and a 3x1 on its output)."""

    trunk: Branch
    parts: tuple[Branch, ...]
    path: str


Branch = Call | SplitSpec


def branch_calls(branch: Branch) -> list[Call]:
    """The plugin calls a branch makes, a split's trunk first."""
    if isinstance(branch, Call):
        return [branch]
    return [*branch_calls(branch.trunk), *(call for part in branch.parts for call in branch_calls(part))]


def branch_label(branch: Branch) -> str:
    """A branch in words, for tables: its plugin, or `trunk>[part,part]` for a split."""
    if isinstance(branch, Call):
        return branch.type
    return f"{branch_label(branch.trunk)}>[{','.join(map(branch_label, branch.parts))}]"


@dataclass(frozen=True)
class ModuleSpec:
    """An Inception module: branches run side by side and concatenated on channels; with
    `combine: residual` the concatenation is projected back to the input width, scaled and added
    to the input, then `act` (Inception-ResNet); `stride` > 1 makes it a reduction module, and so
    does `padding` (given to every branch: 0 makes Inception-v4's unpadded Mixed_4a, 73 → 71)."""

    name: str
    branches: tuple[Branch, ...]
    path: str
    stride: int = 1
    padding: int | None = None  # None: each branch's own
    combine: Combine = "concat"
    scale: float = 1.0
    act: str = "relu"

    @property
    def calls(self) -> list[Call]:
        return [call for branch in self.branches for call in branch_calls(branch)]

    @property
    def reduces(self) -> bool:
        """Whether its branches may change height and width (all to the same size)."""
        return self.stride > 1 or self.padding is not None


@dataclass(frozen=True)
class StageSpec:
    downsample: Call | None
    modules: tuple[ModuleSpec, ...]
    path: str


@dataclass(frozen=True)
class AuxSpec:
    """A training-only classifier tapped after module `after`: average pool (`pool`/`stride`), a 1x1
    conv to `conv`, optionally an unpadded `kernel2` conv to `conv2`, optionally a global average
    pool, flatten, optionally a hidden linear layer of `hidden` and its activation, dropout, linear.
    GoogLeNet's by default (5/3, 128, -, -, 1024, 0.7); Inception-v3's is 5/3, 128, 5x5 768, global
    pool, no hidden layer, no dropout."""

    after: str
    weight: float
    pool: int
    stride: int
    conv: int
    hidden: int  # 0: none, the classifier reads the features directly
    dropout: float
    path: str
    conv2: int = 0  # 0: none
    kernel2: int = 5
    global_pool: bool = False


@dataclass(frozen=True)
class Spec:
    name: str
    channels: int
    size: int
    classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    stem: Call
    stages: tuple[StageSpec, ...]
    dropout: float
    fc: bool  # False: the head is a 1x1 conv to the classes, then global average pooling (NiN)
    aux: tuple[AuxSpec, ...]
    head_act: str = "identity"  # with fc False: the activation after the 1x1 conv (d2l's NiN: relu)
    train: TrainConfig = TrainConfig()
    data: DataConfig = DataConfig()
    search: SearchConfig = SearchConfig()
    raw: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    def module_names(self) -> list[str]:
        return [module.name for stage in self.stages for module in stage.modules]
