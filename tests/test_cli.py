"""The `specs`, `plugins` and `show` commands and argument habits, run in-process as `sandbox ...` runs them."""

from __future__ import annotations

import io
import json
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sandbox.cli import build_parser, complete, settings_last
from sandbox.commands import complete_spec
from sandbox.model.flops import FLOPS_CONVENTION, count, readable
from sandbox.space.bounds import largest_flops, smallest_flops
from sandbox.spec import shipped
from tests.paths import REPO
from tests.search.spaces import tiny_space

if TYPE_CHECKING:
    from tests.conftest import CliResult

SEARCH_SPACES = REPO / "search_spaces"

pytestmark = pytest.mark.usefixtures("isolated_registry")

NIN = REPO / "plugins" / "examples" / "nin.py"
DEFAULTS = "norm: str = 'batchnorm', act: str = 'relu', norm_eps: float = 1e-05"
STRIDE = "stride: int = 1, padding: int | None = None"


def listed_plugins(out: str) -> dict[tuple[str, str], tuple[str, str]]:
    """`plugins` output as {(kind, name): (parameters, source)}."""
    listing: dict[tuple[str, str], tuple[str, str]] = {}
    lines = out.splitlines()
    kind = ""
    for line, following in zip(lines, [*lines[1:], ""], strict=True):
        if line.endswith(" plugins:"):
            kind = line.removesuffix(" plugins:")
        elif line.startswith("  ") and not line.strip().startswith("from "):
            name, params = line.strip().split(maxsplit=1)
            listing[(kind, name)] = (params, following.strip().removeprefix("from "))
    return listing


@pytest.mark.parametrize(
    ("kind", "name", "params", "file"),
    [
        ("stem", "googlenet", f"{DEFAULTS}, lrn: bool = False", "stems.py"),
        ("stem", "conv3x3", f"out: int, {DEFAULTS}", "stems.py"),
        ("branch", "conv1x1", f"out: int, stride: int = 1, {DEFAULTS}", "branches.py"),
        ("branch", "conv3x3", f"out: int, reduce: int, {STRIDE}, {DEFAULTS}", "branches.py"),
        ("branch", "conv5x5", f"out: int, reduce: int, {STRIDE}, {DEFAULTS}", "branches.py"),
        ("branch", "double3x3", f"out: int, reduce: int, {STRIDE}, {DEFAULTS}", "branches.py"),
        ("branch", "factorized", f"out: int, reduce: int, n: int = 7, {STRIDE}, {DEFAULTS}", "branches.py"),
        ("branch", "separable", f"out: int, kernel: int = 3, {STRIDE}, {DEFAULTS}", "branches.py"),
        ("branch", "pool_proj", f"out: int, {STRIDE}, {DEFAULTS}", "branches.py"),
        ("branch", "avg_pool_proj", f"out: int, {STRIDE}, count_pad: bool = True, {DEFAULTS}", "branches.py"),
        (
            "branch",
            "pool",
            f"kind: Literal['max', 'avg'] = 'max', kernel: int = 3, {STRIDE}, count_pad: bool = True",
            "branches.py",
        ),
        ("stem", "inception_v3", DEFAULTS, "stems.py"),
        ("downsample", "maxpool", "kernel: int = 3, stride: int = 2, ceil_mode: bool = True", "downsamples.py"),
    ],
)
def test_plugins_lists_builtins_with_params_defaults_and_source(
    cli: Callable[..., CliResult], kind: str, name: str, params: str, file: str
) -> None:
    result = cli("plugins")
    assert (result.code, result.err) == (0, "")
    assert listed_plugins(result.out)[(kind, name)] == (params, str(REPO / "sandbox" / "plugins" / file))


def test_plugins_lists_a_plugin_file_given_on_the_command_line(cli: Callable[..., CliResult]) -> None:
    result = cli("plugins", "--plugin", NIN)
    assert result.code == 0
    params = "out: int, kernel: int = 3, norm: str = 'batchnorm', act: str = 'relu'"
    assert listed_plugins(result.out)[("stem", "nin")] == (params, str(NIN))


@pytest.mark.parametrize("command", ["plugins", "show"])
@pytest.mark.parametrize(
    ("source", "failure"),
    [("import not_a_module_anywhere\n", "ModuleNotFoundError"), ("import sys\nsys.exit(3)\n", "SystemExit: 3")],
    ids=["import", "sys-exit"],  # sys.exit(3) ended the command with no message
)
def test_a_plugin_file_that_fails_to_import_is_one_line(
    cli: Callable[..., CliResult], tmp_path: Path, command: str, source: str, failure: str
) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text(source)
    args = ["--plugin", broken] if command == "plugins" else [SEARCH_SPACES / "googlenet.yaml", "--plugin", broken]
    result = cli(command, *args)
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert str(broken) in result.err and f"failed to import: {failure}" in result.err


def test_show_prints_a_table_with_totals_and_the_convention(cli: Callable[..., CliResult]) -> None:
    result = cli("show", SEARCH_SPACES / "googlenet.yaml")
    assert result.code == 0
    rows = {line.split()[0]: line.split() for line in result.out.splitlines() if line.strip()}
    for name in ("stem", "inception3a", "inception4e", "stage2.downsample", "inception5b", "head"):
        assert name in rows
    assert rows["inception5b"][-3:] == ["1024x7x7", "1,347,040", "131,762,176"]  # by hand: 2 * 7 * 7 * 1,344,512
    assert rows["total"] == ["total", "6,624,904", "2,996,752,384"]
    assert FLOPS_CONVENTION in result.out


def test_show_json_gives_params_flops_and_modules(
    cli: Callable[..., CliResult], small_spec: Callable[[], dict[str, Any]], write_yaml: Callable[..., Path]
) -> None:
    file = write_yaml(small_spec())
    result = cli("show", file, "--json")
    assert result.code == 0
    shown = json.loads(result.out)
    expected = count(file)
    assert (shown["params"], shown["flops"]) == (expected.params, expected.flops)
    assert [m["name"] for m in shown["modules"]] == ["stem", "0.0", "stage1.downsample", "1.0", "head"]
    assert shown["modules"] == json.loads(json.dumps(expected.as_dict()["modules"]))
    assert set(shown["modules"][0]) == {"name", "kind", "shape", "params", "flops"}
    assert shown["convention"] == FLOPS_CONVENTION


def test_show_loads_plugin_files_named_on_the_command_line(
    cli: Callable[..., CliResult], small_spec: Callable[[], dict[str, Any]], write_yaml: Callable[..., Path]
) -> None:
    raw = small_spec()
    raw["stem"] = {"type": "nin", "out": 16}
    result = cli("show", write_yaml(raw), "--plugin", NIN, "--json")
    assert result.code == 0
    assert json.loads(result.out)["modules"][0]["kind"] == "stem nin"


def test_show_a_missing_file_is_one_line(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    result = cli("show", tmp_path / "nope.yaml")
    assert result.code == 2
    assert result.err == f"error: cannot read spec {tmp_path / 'nope.yaml'}: No such file or directory\n"


def test_help_names_the_console_script() -> None:
    assert build_parser().format_help().startswith("usage: sandbox ")


def test_show_takes_a_shipped_name_and_set_before_it(cli: Callable[..., CliResult]) -> None:
    plain = cli("show", "fmnist_baseline", "--json")
    narrowed = cli("show", "--set", "stem.out=8", "head.dropout=0.1", "fmnist_baseline", "--json")
    assert (plain.code, narrowed.code) == (0, 0)
    assert json.loads(narrowed.out)["params"] < json.loads(plain.out)["params"]
    result = cli("show", "--set", "stem.outt=8", "fmnist_baseline")
    assert result.code == 2 and result.err.count("\n") == 1
    assert result.err.startswith("error: stem.outt: unknown key") and "did you mean 'out'?" in result.err
    assert "(set by --set stem.outt=8)" in result.err


def test_set_before_the_spec_leaves_the_spec_to_its_argument() -> None:
    argv = ["search", "--set", "train.lr=0.05", "search.trials=3", "quickstart", "--epochs", "2", "--set", "a.b=1"]
    args = build_parser().parse_args(settings_last(argv))
    assert args.spec == str(SEARCH_SPACES / "quickstart.yaml")
    assert args.set == ["train.lr=0.05", "search.trials=3", "a.b=1"] and args.epochs == 2
    assert settings_last(["train", "--set", "train.lr", "x.yaml"]) == ["train", "--set", "train.lr", "x.yaml"]


def test_show_counts_read_as_people_say_them(cli: Callable[..., CliResult], small_spec: Callable, write_yaml) -> None:
    file = write_yaml(small_spec())
    params = count(file).params
    assert params < 1_000_000 and f"= {params:,} params, " in cli("show", file).out  # not "0.00 M params"
    assert (readable(4_858), readable(6_624_904), readable(1_200_000_000)) == ("4,858", "6.62 M", "1.20 G")


def test_specs_lists_networks_with_counts_and_spaces_with_their_range(
    cli: Callable[..., CliResult], small_spec: Callable, write_yaml, monkeypatch: pytest.MonkeyPatch
) -> None:
    net, space = write_yaml(small_spec(), "small.yaml"), write_yaml(tiny_space(), "tiny.yaml")
    monkeypatch.setattr(shipped, "INSTALLED", net.parent)
    result = cli("specs")
    assert result.code == 0
    rows = {line.split()[0]: line.split()[1:] for line in result.out.splitlines()[1:-1]}
    counts = count(net)
    assert rows["small"] == ["network", f"{counts.params:,}", f"{counts.flops / 1e6:,.1f}", "MFLOPs"]
    low, high = (f"{flops / 1e6:,.1f}" for flops in (smallest_flops(tiny_space(), space.parent),
                                                      largest_flops(tiny_space(), space.parent)))  # fmt: skip
    assert rows["tiny"] == ["space", low, "to", high, "MFLOPs"]
    assert cli("specs", "t*", "--names").out == "tiny\n"
    missing = cli("specs", "x*")
    assert (
        missing.code == 2
        and missing.err == "error: PATTERN: no shipped spec matches 'x*' (`sandbox specs` lists them all)\n"
    )


def test_spec_completions_are_shipped_names_then_yaml_files_and_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "googlenet_mine.yaml").write_text("")
    (tmp_path / "goo_notes.txt").write_text("")
    (tmp_path / "good").mkdir()
    assert complete_spec("goo") == ["googlenet", "googlenet_2014", "good/", "googlenet_mine.yaml"]


def test_completion_runs_only_when_the_shell_asks_and_argcomplete_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[object] = []
    monkeypatch.setitem(sys.modules, "argcomplete", types.SimpleNamespace(autocomplete=asked.append))
    parser = build_parser()
    monkeypatch.delenv("_ARGCOMPLETE", raising=False)
    complete(parser)
    assert asked == []
    monkeypatch.setenv("_ARGCOMPLETE", "1")
    complete(parser)
    assert asked == [parser]
    monkeypatch.setitem(sys.modules, "argcomplete", None)  # not installed: the command runs on
    complete(parser)


def test_argcomplete_completes_a_spec_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    argcomplete = pytest.importorskip("argcomplete")
    line = "sandbox search --set train.lr=0.1 quick"
    for name, value in {"_ARGCOMPLETE": "1", "COMP_LINE": line, "COMP_POINT": str(len(line))}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("_ARGCOMPLETE_IFS", "\n")
    out = io.StringIO()

    def done(code: int = 0) -> None:
        raise SystemExit(code)

    with pytest.raises(SystemExit):
        argcomplete.autocomplete(build_parser(), exit_method=done, output_stream=out)
    assert out.getvalue().split() == ["quickstart"]
