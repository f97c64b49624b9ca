"""The spec loader: what a valid spec becomes, and one clear line naming the YAML path for every bad one."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox import SpecError, build, load_spec
from sandbox.spec.datasets import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from sandbox.spec.load import parse_yaml
from tests.deadline import deadline

pytestmark = pytest.mark.usefixtures("isolated_registry")

Spec = dict[str, Any]

STRIDED_BRANCH = """
from torch import nn
from sandbox import register_branch

@register_branch("strided")
def strided(in_channels: int, *, out: int) -> nn.Module:
    return nn.Conv2d(in_channels, out, 3, stride=2, padding=1)
"""


def branch(spec: Spec, k: int, stage: int = 0) -> Spec:
    return spec["stages"][stage]["modules"][0]["branches"][k]


def pool_stages(n: int) -> list[Spec]:
    return [{"downsample": {"type": "maxpool"}, "modules": [{"branches": [{"type": "conv1x1", "out": 8}]}]}] * n


@dataclass(frozen=True)
class Bad:
    """A bad spec: an edit of the small spec (or the whole file's text/bytes), and the error it must give."""

    id: str
    edit: Callable[[Spec], object] | str | bytes
    path: str  # the SpecError's path; {file} is the spec file
    fragments: tuple[str, ...]  # in the message; {plugin} is the plugin file
    plugin: str | None = None  # source of plugin.py, listed in the spec's `plugins:`


BAD_SPECS = [
    Bad("malformed-yaml", "name: bad\nstem: {type: conv3x3, out: 8}\nclasses: 10: 3\n", "{file}:3:12",
        ("malformed YAML: mapping values are not allowed here",)),
    Bad("unclosed-yaml", "name: bad\nstages:\n  - modules: [\n", "{file}:4:1", ("malformed YAML",)),
    Bad("not-utf8", b"name: \xff\xfe\n", "", ("cannot read spec {file}: not UTF-8 text",)),
    Bad("top-level-list", "- stem\n- stages\n", "{file}", ("the top level must be a mapping", "not a list")),
    Bad("top-level-empty", "", "{file}", ("the top level must be a mapping", "not nothing")),
    Bad("unknown-stem", lambda s: s["stem"].update(type="conv3x4"), "stem.type",
        ("unknown stem 'conv3x4' (known: bn_inception, chain, conv3x3, googlenet, ", "did you mean 'conv3x3'?")),
    Bad("unknown-branch", lambda s: branch(s, 1).update(type="conv3x4"), "stages[0].modules[0].branches[1].type",
        ("unknown branch 'conv3x4' (known: avg_pool_proj, chain, conv, conv1x1, conv3x3, ", "did you mean 'conv3x3'?")),
    Bad("unknown-downsample", lambda s: s["stages"][1]["downsample"].update(type="maxpol"),
        "stages[1].downsample.type", ("did you mean 'maxpool'?",)),
    Bad("missing-stages", lambda s: s.pop("stages"), "spec", ("missing key 'stages'",)),
    Bad("missing-type", lambda s: s["stem"].pop("type"), "stem", ("missing key 'type'",)),
    Bad("missing-plugin-key", lambda s: branch(s, 1).pop("reduce"), "stages[0].modules[0].branches[1]",
        ("missing key 'reduce' for branch 'conv3x3'",)),
    Bad("unknown-top-key", lambda s: s.update(stagse=[]), "stagse",
        ("unknown key (allowed here: name,", "did you mean 'stages'?")),
    Bad("unprintable-key", lambda s: s.update({"a\nb": 1}), "'a\\nb'", ("unknown key",)),  # still one line
    Bad("unknown-plugin-key", lambda s: branch(s, 0).update(kernel=3), "stages[0].modules[0].branches[0].kernel",
        ("unknown key for branch 'conv1x1' (takes: out, stride, norm, act, norm_eps)",)),
    Bad("misspelt-plugin-key", lambda s: branch(s, 0).update(strid=2), "stages[0].modules[0].branches[0].strid",
        ("(takes: out, stride, norm, act, norm_eps; did you mean 'stride'?)",)),
    Bad("unknown-default", lambda s: s.update(defaults={"nrom": "none"}), "defaults.nrom",
        ("no plugin in this spec takes it",)),
    Bad("wrong-type-string", lambda s: branch(s, 1).update(out="16"), "stages[0].modules[0].branches[1].out",
        ("expected an int, got a string '16'",)),
    Bad("wrong-type-float", lambda s: s["input"].update(size=28.5), "input.size", ("expected an int, got float",)),
    Bad("wrong-type-bool", lambda s: s["stem"].update(out=True), "stem.out", ("expected an integer, got True",)),
    Bad("wrong-type-default", lambda s: s.update(defaults={"norm": 3}), "defaults.norm", ("expected a str",)),
    Bad("wrong-type-mapping", lambda s: s["stages"].append([1]), "stages[2]", ("expected a mapping, got a list",)),
    Bad("wrong-type-modules", lambda s: s["stages"][0].update(modules={}), "stages[0].modules",
        ("expected a non-empty list of modules",)),
    Bad("zero-width", lambda s: branch(s, 0).update(out=0), "stages[0].modules[0].branches[0].out",
        ("must be a positive number of channels, got 0",)),
    Bad("negative-reduce", lambda s: branch(s, 2).update(reduce=-4), "stages[0].modules[0].branches[2].reduce",
        ("must be a positive number of channels, got -4",)),
    Bad("zero-stem-width", lambda s: s["stem"].update(out=0), "stem.out", ("must be a positive number of channels",)),
    Bad("too-many-channels", lambda s: s["input"].update(channels=2**31), "input.channels",
        ("must be at most 4096, got 2147483648",)),
    Bad("huge-classes", lambda s: s.update(classes=2**63), "classes", ("the classifier failed to build: ",)),
    Bad("huge-aux", lambda s: s.update(aux=[{"after": "0.0", "hidden": 2**63}]), "aux[0]",
        ("the aux head failed to build: ",)),
    Bad("zero-channels", lambda s: s["input"].update(channels=0), "input.channels", ("must be positive, got 0",)),
    Bad("normalize-length", lambda s: s.update(normalize={"mean": [0.5, 0.5]}), "normalize.mean",
        ("expected a list of 1 numbers",)),
    Bad("dropout-range", lambda s: s["head"].update(dropout=1), "head.dropout", ("must be in [0, 1)",)),
    # 28 → 14 → 7 → 3 → 1, and the fifth 3x3/2 pool has nothing left to pool
    Bad("collapse", lambda s: s.update(stages=pool_stages(6)), "stages[4].downsample",
        ("stage 4's downsample cannot take a 8x1x1 input", "collapsed")),
    Bad("repeat-zero", lambda s: s["stages"][0]["modules"][0].update(repeat=0), "stages[0].modules[0].repeat",
        ("must be positive, got 0",)),
    Bad("repeat-huge", lambda s: s["stages"][0]["modules"][0].update(repeat=10**9), "stages[0].modules[0].repeat",
        ("must be at most 256",)),
    Bad("repeat-type", lambda s: s["stages"][0]["modules"][0].update(repeat="2"), "stages[0].modules[0].repeat",
        ("expected an int",)),
    Bad("duplicate-module-name", lambda s: [m.update(name="x") for st in s["stages"] for m in st["modules"]],
        "stages", ("module name 'x' is used more than once",)),
    Bad("aux-missing-module", lambda s: s.update(aux=[{"after": "9.9"}]), "aux[0].after",
        ("no module named '9.9' (modules: 0.0, 1.0)",)),
    Bad("aux-after-a-number", lambda s: s.update(aux=[{"after": 1.1}]), "aux[0].after",
        ("expected a module's name as text, got 1.1;", "quote the name")),
    Bad("aux-twice", lambda s: s.update(aux=[{"after": "0.0"}, {"after": "0.0"}]), "aux[1].after",
        ("module '0.0' already has an aux head",)),
    Bad("aux-pool-too-big", lambda s: s.update(aux=[{"after": "1.0", "pool": 20}]), "aux[0].pool",
        ("the feature map after '1.0' is 14x14, smaller than the pool (20)",)),
    Bad("plugin-missing", lambda s: s.update(plugins=["nope.py"]), "plugins[0]", ("nope.py does not exist",)),
    Bad("plugin-fails-to-import", lambda s: s.update(plugins=["plugin.py"]), "plugins[0]",
        ("plugin file {plugin} failed to import: ModuleNotFoundError",), plugin="import not_a_module_anywhere\n"),
    Bad("plugin-changes-size", lambda s: (s.update(plugins=["plugin.py"]), branch(s, 0).update(type="strided")),
        "stages[0].modules[0].branches[0]", ("branch 'strided' ({plugin}) changes height/width 28x28 → 14x14",),
        plugin=STRIDED_BRANCH),
]  # fmt: skip


def _write_bad(bad: Bad, small: Spec, write_yaml: Callable[..., Path]) -> tuple[Path, str, list[str]]:
    """Write the bad spec (and its plugin) to tmp_path; return the file, expected path and fragments."""
    if isinstance(bad.edit, bytes):
        file = write_yaml("")
        file.write_bytes(bad.edit)
    elif isinstance(bad.edit, str):
        file = write_yaml(bad.edit)
    else:
        bad.edit(small)
        file = write_yaml(small)
    plugin = file.parent / "plugin.py"
    if bad.plugin is not None:
        plugin.write_text(textwrap.dedent(bad.plugin))
    fragments = [f.format(file=file, plugin=plugin.resolve()) for f in bad.fragments]
    return file, bad.path.format(file=file), fragments


@pytest.mark.parametrize("bad", BAD_SPECS, ids=[b.id for b in BAD_SPECS])
def test_bad_spec_names_its_yaml_path(bad: Bad, small_spec: Callable[[], Spec], write_yaml, cli) -> None:
    """Through the API a SpecError located at the YAML path; through the CLI exit 2 and that one line."""
    file, path, fragments = _write_bad(bad, small_spec(), write_yaml)
    with pytest.raises(SpecError) as info:
        build(load_spec(file), device="meta")
    assert info.value.path == path
    for fragment in fragments:
        assert fragment in info.value.message

    result = cli("show", file)
    assert result.code == 2
    assert result.out == ""
    assert result.err == f"error: {info.value}\n"  # exactly one line, no traceback
    assert result.err.startswith(f"error: {path}: " if path else "error: ")


def test_dict_and_file_give_the_same_spec(small_spec: Callable[[], Spec], write_yaml) -> None:
    from_dict, from_file = load_spec(small_spec()), load_spec(write_yaml(small_spec()))
    assert from_dict.stages == from_file.stages
    assert from_dict.stem == from_file.stem
    assert from_file.source is not None and from_dict.source is None


def test_omitted_values_take_their_documented_defaults(small_spec: Callable[[], Spec]) -> None:
    raw = small_spec()
    for key in ("name", "input", "classes", "head"):
        del raw[key]
    spec = load_spec(raw)
    assert (spec.name, spec.channels, spec.size, spec.classes, spec.dropout) == ("network", 1, 28, 10, 0.2)
    assert (spec.mean, spec.std) == (FASHION_MNIST_MEAN, FASHION_MNIST_STD)
    assert spec.module_names() == ["0.0", "1.0"]  # stage.module


def test_numbers_are_coerced_to_the_annotated_type(small_spec: Callable[[], Spec]) -> None:
    raw = small_spec() | {"normalize": {"mean": [0], "std": [1]}, "aux": [{"after": "0.0", "weight": 1}]}
    spec = load_spec(raw)
    assert spec.mean == (0.0,) and isinstance(spec.mean[0], float)
    assert spec.aux[0].weight == 1.0 and isinstance(spec.aux[0].weight, float)


def test_defaults_go_only_to_plugins_that_accept_them(small_spec: Callable[[], Spec]) -> None:
    raw = small_spec() | {"defaults": {"norm": "none", "act": "gelu", "ceil_mode": False}}
    branch(raw, 0)["act"] = "relu"  # an explicit key beats the default
    spec = load_spec(raw)
    assert spec.stem.params == {"out": 16, "norm": "none", "act": "gelu"}
    assert spec.stages[1].downsample is not None
    assert spec.stages[1].downsample.params == {"ceil_mode": False}  # the pool takes no norm or act
    first, second = spec.stages[0].modules[0].branches[:2]
    assert first.params == {"out": 8, "norm": "none", "act": "relu"}
    assert second.params == {"out": 16, "reduce": 8, "norm": "none", "act": "gelu"}


def test_repeat_makes_numbered_modules_of_the_same_widths(small_spec: Callable[[], Spec]) -> None:
    raw = small_spec()
    raw["stages"][0]["modules"][0] |= {"name": "block", "repeat": 3}
    spec = load_spec(raw)
    assert spec.module_names() == ["block.0", "block.1", "block.2", "1.0"]
    first = spec.stages[0].modules[0]
    assert all(m.branches == first.branches for m in spec.stages[0].modules)
    assert [m.path for m in spec.stages[0].modules] == ["stages[0].modules[0]"] * 3


def test_aux_after_can_name_a_repeated_module(small_spec: Callable[[], Spec]) -> None:
    raw = small_spec() | {"aux": [{"after": "block.1", "weight": 0.3}]}
    raw["stages"][0]["modules"][0] |= {"name": "block", "repeat": 2}
    assert [(a.after, a.weight) for a in load_spec(raw).aux] == [("block.1", 0.3)]


def test_plugin_paths_are_relative_to_the_spec_file(
    small_spec: Callable[[], Spec], write_yaml, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "plugin.py").write_text(textwrap.dedent(STRIDED_BRANCH).replace("stride=2", "stride=1"))
    raw = small_spec() | {"plugins": ["plugin.py"]}
    branch(raw, 0)["type"] = "strided"
    file = write_yaml(raw)
    monkeypatch.chdir(tmp_path.parent)  # not where the plugin is
    assert load_spec(file).stages[0].modules[0].branches[0].plugin.source == str((tmp_path / "plugin.py").resolve())


def test_other_sections_are_parsed_once_at_load(small_spec: Callable[[], Spec]) -> None:
    sections = {"train": {"epochs": 3, "lr": 1}, "data": {"root": "x"}, "search": {"trials": 4}}
    spec = load_spec(small_spec() | sections)
    assert (spec.train.epochs, spec.train.lr, spec.train.batch_size) == (3, 1.0, 128)
    assert isinstance(spec.train.lr, float)
    assert spec.data.root == Path("x").resolve() and spec.search.trials == 4
    with pytest.raises(SpecError) as err:
        load_spec(small_spec() | {"train": {"lr": float("nan")}})
    assert err.value.path == "train.lr"


def alias_bomb(levels: int = 9) -> str:
    """A "billion laughs": each anchor a list of nine aliases of the one before, 9**levels strings in all."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join([*lines, f"stem: *l{levels - 1}", f"stages: [*l{levels - 1}]", ""])


SPACE = "data: {dataset: fashion-mnist-sample}\nstem: {type: conv3x3, out: {int: [8, 16]}}"  # `search` reads it too
ONE_STAGE = "{modules: [{branches: [{type: conv1x1, out: 8}]}]}"
HUGE_YAML = {  # the text, and what the one line says
    "alias-bomb": (alias_bomb(), "more than 100,000 YAML nodes, aliases expanded: an alias bomb?"),
    "self-alias": ("stem: &a [1, *a]\nstages: []\n", "alias *a is inside its own anchor"),
    "nested-1000-deep": ("stem: " + "[" * 1000 + "]" * 1000 + "\nstages: []\n", "nested deeper than 64 levels"),
    "943k-stages": (f"s: &s {ONE_STAGE}\nstages: [{', '.join(['*s'] * 943_000)}]\n", "more than 100,000 YAML"),
    "65-stages": (f"{SPACE}\nstages: [{', '.join([ONE_STAGE] * 65)}]\n", "65 stages, more than the 64 a network may"),
    "1280-modules": (f"{SPACE}\nstages: [{{modules: ["
                     + ", ".join(["{repeat: 256, branches: [{type: conv1x1, out: 8}]}"] * 5) + "]}]\n",
                     "more than the 1024 modules a network may have"),
}  # fmt: skip


@pytest.mark.parametrize("command", ["show", "search"])
@pytest.mark.parametrize("case", HUGE_YAML, ids=list(HUGE_YAML))
def test_yaml_too_big_or_too_deep_is_one_line_at_once(case: str, command: str, write_yaml, cli) -> None:
    """Refused while composing, before aliases expand (today `show` runs for ever on the bomb)."""
    text, message = HUGE_YAML[case]
    file = write_yaml(text)

    with deadline(5):
        result = cli(command, file, *(["--device", "cpu"] if command == "search" else []))

    assert result.code == 2 and result.out == ""
    assert result.err.startswith("error: ") and result.err.count("\n") == 1, result.err
    assert message in result.err


def test_a_spec_that_is_not_a_regular_file_is_read_up_to_the_limit(cli) -> None:
    """`show /dev/zero` read without end: st_size is 0 there, so only the read itself can stop."""
    with deadline(20):
        result = cli("show", "/dev/zero")
    assert result.code == 2 and result.err == "error: /dev/zero: larger than 16 MiB: not a spec\n"


def test_a_spec_from_a_pipe_is_read_once(small_spec, cli) -> None:
    """`show <(cat spec.yaml)`: a second read of the pipe found it empty."""
    reading, writing = os.pipe()
    with os.fdopen(writing, "w") as pipe:
        pipe.write(yaml.safe_dump(small_spec()))
    try:
        result = cli("show", f"/dev/fd/{reading}")
    finally:
        os.close(reading)
    assert result.code == 0 and "total" in result.out.lower(), result.err


def test_a_duplicate_key_is_refused_naming_both_lines(write_yaml, cli) -> None:
    """A second `train:` silently replaced the first."""
    file = write_yaml("name: x\ntrain: {lr: 0.1}\nstages: []\ntrain: {lr: 0.5}\n")
    result = cli("show", file)
    assert result.code == 2
    assert result.err == f"error: {file}:4:1: duplicate key 'train', first at line 2: remove one of them\n"
    merged = parse_yaml("base: &b {lr: 0.1, epochs: 2}\ntrain: {<<: *b, lr: 0.5}\n", "merged")
    assert merged["train"] == {"lr": 0.5, "epochs": 2}  # a merged key overridden is no duplicate
