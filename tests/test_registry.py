"""The plugin registry: decorators, signature-as-schema, file loading and entry-point discovery."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from torch import nn

from sandbox import PluginError, SpecError, register_branch, register_stem
from sandbox.registry import ENTRY_POINT_GROUP, REGISTRY

pytestmark = pytest.mark.usefixtures("isolated_registry")

BRANCH_FILE = """
from torch import nn
from sandbox import register_branch

@register_branch("{name}")
def factory(in_channels: int, *, out: int, reduce: int, dilation: int = 2) -> nn.Module:
    return nn.Conv2d(in_channels, out, 3, padding=dilation, dilation=dilation)
"""


@pytest.fixture
def plugin_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a plugin file registering branch `name` (or arbitrary source) into tmp_path/sub."""

    def write(name: str = "dilated3x3", *, sub: str = "a", source: str | None = None) -> Path:
        path = tmp_path / sub / "my_branches.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(textwrap.dedent(source) if source is not None else BRANCH_FILE.format(name=name))
        return path

    return write


def test_decorator_registers_and_returns_the_factory() -> None:
    def dilated(in_channels: int, *, out: int) -> nn.Module:
        return nn.Conv2d(in_channels, out, 1)

    assert register_branch("test_dilated")(dilated) is dilated
    plugin = REGISTRY.get("branch", "test_dilated", "x")
    assert (plugin.kind, plugin.name, plugin.factory) == ("branch", "test_dilated", dilated)
    assert plugin.source == str(Path(__file__).resolve())
    assert "test_dilated" in [p.name for p in REGISTRY.all("branch")]
    assert "test_dilated" not in [p.name for p in REGISTRY.all("stem")]


def test_signature_is_the_schema() -> None:
    @register_stem("test_schema")
    def stem(in_channels: int, *, out: int, kernel: int = 3, norm: str = "batchnorm", scale: float = 0.5) -> nn.Module:
        raise AssertionError("not built here")

    params = REGISTRY.get("stem", "test_schema", "x").params
    assert list(params) == ["out", "kernel", "norm", "scale"]  # in_channels is not a key
    assert [name for name, p in params.items() if p.required] == ["out"]
    assert (params["kernel"].annotation, params["kernel"].default) == (int, 3)
    assert params["scale"].annotation is float
    assert params["out"].describe() == "out: int"
    assert params["norm"].describe() == "norm: str = 'batchnorm'"


def test_factory_without_in_channels_is_rejected() -> None:
    with pytest.raises(PluginError, match="first parameter must be in_channels"):
        register_branch("test_no_channels")(lambda *, out: nn.Identity())


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(SpecError) as info:
        REGISTRY.get("branch", "conv3x4", "stages[0].modules[0].branches[2].type")
    assert info.value.path == "stages[0].modules[0].branches[2].type"
    known = "known: avg_pool_proj, chain, conv, conv1x1, conv3x3, conv5x5, double3x3, factorized, pool"
    assert known in info.value.message
    assert "did you mean 'conv3x3'?" in info.value.message


def test_plugin_file_loaded_twice_is_a_no_op(plugin_file: Callable[..., Path]) -> None:
    path = plugin_file()
    REGISTRY.load_file(path)
    first = REGISTRY.get("branch", "dilated3x3", "x")
    REGISTRY.load_file(path.parent / ".." / path.parent.name / path.name)  # same file, another spelling
    assert REGISTRY.get("branch", "dilated3x3", "x") is first
    assert first.source == str(path.resolve())


def test_same_name_from_two_files_names_both(plugin_file: Callable[..., Path]) -> None:
    first, second = plugin_file(sub="a"), plugin_file(sub="b")
    REGISTRY.load_file(first)
    with pytest.raises(PluginError) as info:
        REGISTRY.load_file(second)
    assert str(first.resolve()) in str(info.value)
    assert str(second.resolve()) in str(info.value)


def test_shadowing_a_builtin_names_both_sources(plugin_file: Callable[..., Path]) -> None:
    with pytest.raises(PluginError, match=r"branch 'conv3x3' is registered twice: by .*plugins/branches\.py and by"):
        REGISTRY.load_file(plugin_file("conv3x3"))


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("import not_a_module_anywhere\n", "ModuleNotFoundError"),
        ("def broken(:\n", "SyntaxError"),
        ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
        ("raise ValueError('first line\\nsecond line')\n", "ValueError: first line"),
        ("import sys\nsys.exit(3)\n", "SystemExit: 3"),  # ended the command with no message
    ],
    ids=["import", "syntax", "raises", "multiline", "sys-exit"],
)
def test_plugin_file_that_fails_to_import_names_the_file(
    plugin_file: Callable[..., Path], source: str, fragment: str
) -> None:
    path = plugin_file(source=source)
    with pytest.raises(PluginError) as info:
        REGISTRY.load_file(path)
    assert str(path.resolve()) in str(info.value)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_ctrl_c_while_a_plugin_file_imports_still_interrupts(plugin_file: Callable[..., Path]) -> None:
    with pytest.raises(KeyboardInterrupt):
        REGISTRY.load_file(plugin_file(source="raise KeyboardInterrupt\n"))


def test_entry_point_that_exits_is_a_plugin_error(entry_point_package: Callable[[str], None]) -> None:
    entry_point_package("raise SystemExit('no GPU here')\n")
    with pytest.raises(PluginError, match=r"entry point 'demo' .*SystemExit: no GPU here"):
        REGISTRY.discover()


def test_missing_plugin_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="nope.py does not exist"):
        REGISTRY.load_file(tmp_path / "nope.py")


@pytest.fixture
def entry_point_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """An installed-package stand-in: a module on sys.path, announced by a `sandbox.plugins` entry point."""
    module = "sandbox_test_entry_point_plugins"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(REGISTRY, "_discovered", False)

    def install(source: str) -> None:
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        entry = importlib.metadata.EntryPoint(name="demo", value=module, group=ENTRY_POINT_GROUP)
        monkeypatch.setattr(
            importlib.metadata, "entry_points", lambda group=None: [entry] if group == ENTRY_POINT_GROUP else []
        )

    yield install
    sys.modules.pop(module, None)


def test_entry_point_plugins_are_discovered(entry_point_package: Callable[[str], None]) -> None:
    entry_point_package(BRANCH_FILE.format(name="from_package"))
    plugin = REGISTRY.get("branch", "from_package", "x")
    assert plugin.source.endswith("sandbox_test_entry_point_plugins.py")
    assert "conv3x3" in [p.name for p in REGISTRY.all("branch")]  # built-ins still there


def test_entry_point_that_fails_to_load_names_it(entry_point_package: Callable[[str], None]) -> None:
    entry_point_package("raise ImportError('missing dependency')\n")
    for _ in range(2):  # asked again, it is reported again, not left silently missing
        with pytest.raises(PluginError, match=r"entry point 'demo' \(sandbox_test_entry_point_plugins\).*missing dep"):
            REGISTRY.discover()
    entry_point_package(BRANCH_FILE.format(name="fixed_package"))  # the dependency installed
    assert REGISTRY.get("branch", "fixed_package", "x").name == "fixed_package"


@pytest.mark.parametrize(
    ("register", "keyword"),
    [(register_branch, "trunk"), (register_branch, "split"), (register_branch, "choice"), (register_stem, "int")],
)
def test_a_keyword_no_spec_could_set_is_refused_naming_the_plugin_and_the_keyword(register, keyword: str) -> None:
    # `{type: mine, choice: 3}` is read as a search primitive, `trunk:` and `split:` make a branch split
    source = f"def mine(in_channels, *, out: int, {keyword}: int = 1):\n    return None\n"
    namespace: dict = {}
    exec(source, namespace)
    with pytest.raises(PluginError, match=rf"'mine' .*keyword '{keyword}' is reserved in a (branch|stem) entry"):
        register("mine")(namespace["mine"])
    assert "mine" not in [plugin.name for plugin in REGISTRY.all("branch") + REGISTRY.all("stem")]


def test_a_stem_may_have_a_keyword_named_split() -> None:
    @register_stem("test_split_stem")
    def stem(in_channels: int, *, out: int, split: int = 2) -> nn.Module:
        return nn.Conv2d(in_channels, out, 3, groups=1)

    assert "split" in REGISTRY.get("stem", "test_split_stem", "x").params
