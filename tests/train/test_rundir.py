"""Run directories that cannot be read as they were written: each is one line and exit 2, never a traceback."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sandbox.runs import file_name
from tests.run_dirs import make_run_dir

if TYPE_CHECKING:
    from tests.conftest import CliResult

pytestmark = pytest.mark.usefixtures("isolated_registry")

# A plugin whose width is not its parameters' but a file's: a run trained with one width, then evaluated with another.
FILE_WIDTH = """
from pathlib import Path

from torch import nn

from sandbox import register_branch


@register_branch("file_width")
def file_width(in_channels: int) -> nn.Module:
    return nn.Conv2d(in_channels, int((Path(__file__).parent / "width.txt").read_text()), 1)
"""


def test_weights_of_another_width_name_the_first_tensor_and_both_shapes(
    small_spec: Callable[[], dict[str, Any]], tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    (tmp_path / "plugin.py").write_text(FILE_WIDTH)
    (tmp_path / "width.txt").write_text("8")
    spec = small_spec()
    spec["plugins"] = [str(tmp_path / "plugin.py")]
    spec["stages"][0]["modules"][0]["branches"][0] = {"type": "file_width"}
    trained = make_run_dir(tmp_path / "run", spec).state_dict()
    (tmp_path / "width.txt").write_text("6")

    result = cli("evaluate", tmp_path / "run", "--device", "cpu")

    assert result.code == 2 and result.err.count("\n") == 1, result.err  # was "Error(s) in loading state_dict"
    shapes = re.search(r"its spec.yaml builds: (\S+) is (.+) in the weights but (.+) in the network", result.err)
    assert shapes is not None, result.err
    assert shapes.group(2, 3) == ("(8, 16, 1, 1)", "(6, 16, 1, 1)") and trained[shapes[1]].shape == (8, 16, 1, 1)
    assert "(and " in result.err  # the next module's inputs differ too, but only the first is spelled out


@pytest.mark.parametrize("text", ["[0.9, 0.8]", '"finished"', "null", "0.9"])
@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_metrics_json_that_is_not_a_mapping_is_one_line(
    small_spec: Callable[[], dict[str, Any]], tmp_path: Path, cli: Callable[..., CliResult], command: str, text: str
) -> None:
    make_run_dir(tmp_path / "run", small_spec())
    (tmp_path / "run" / "metrics.json").write_text(text)

    result = cli(command, tmp_path / "run", *(["--device", "cpu"] if command == "evaluate" else []))

    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert result.err.startswith(f"error: {tmp_path / 'run' / 'metrics.json'} holds ")
    assert result.err.endswith(", not a JSON object of metrics\n")


@pytest.mark.parametrize(
    ("args", "message"), [(["--epochs", "0"], "--epochs: must be >= 1, got 0"), ([], "train.epochs")]
)
def test_train_for_zero_epochs_is_one_line_before_the_run_directory(
    small_spec: Callable[[], dict[str, Any]],
    write_yaml: Callable[..., Path],
    tmp_path: Path,
    cli: Callable[..., CliResult],
    args: list[str],
    message: str,
) -> None:
    """timm's scheduler asserted on zero epochs; the command refuses first, and makes no run directory."""
    spec = small_spec() | {"data": {"dataset": "fashion-mnist-sample"}}
    spec |= {} if args else {"train": {"epochs": 0}}

    result = cli("train", write_yaml(spec), "--out", tmp_path / "run", "--device", "cpu", *args)

    assert result.code == 2 and result.err.count("\n") == 1 and message in result.err, result.err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("name", "safe"),
    [("../../x", "x"), ("/etc/passwd", "etc_passwd"), ("a b/c", "a_b_c"), ("..", "run"), ("net-1.v2", "net-1.v2")],
)
def test_a_specs_name_becomes_one_file_name_inside_runs(name: str, safe: str) -> None:
    assert file_name(name) == safe  # `name: ../../x` wrote outside runs/
