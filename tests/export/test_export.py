"""Export: standalone .py and .pt2 files that run without the sandbox and compute what it computes.

The central check runs each exported file in a fresh interpreter in which the sandbox, the plugins
and every dependency but torch refuse to import, and compares its outputs with the sandbox network's.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch
from torch import nn

from sandbox.errors import SandboxError
from sandbox.export import export
from sandbox.export.carry import LAYERS_STANDIN
from sandbox.export.code import Imports
from sandbox.export.layers import LayerWriter
from sandbox.layers import conv_norm_act
from tests.paths import REPO
from tests.run_dirs import make_run_dir, make_search_dir, trained_like

if TYPE_CHECKING:
    from tests.conftest import CliResult

pytestmark = pytest.mark.usefixtures("isolated_registry")

NIN = REPO / "plugins" / "examples" / "nin.py"
BLOCKED = ("sandbox", "plugins", "timm", "optuna", "yaml", "torchvision")

# A user's plugin file: a branch with its own module classes, a constant and sandbox.layers; a second
# branch needing numpy cannot be carried, but as long as a spec does not use it, it must not matter.
USER_BRANCHES = '''
"""Branches a user wrote: a dilated 3x3 with squeeze-and-excitation."""

import numpy as np
from torch import Tensor, nn

from sandbox import register_branch
from sandbox.layers import conv_norm_act

REDUCTION = 4


class SqueezeExcite(nn.Module):
    """Channel gates from globally pooled features."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(1, channels // REDUCTION)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, channels, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x).sigmoid()


class DilatedSE(nn.Module):
    def __init__(self, in_channels: int, out: int, dilation: int) -> None:
        super().__init__()
        self.conv = conv_norm_act(in_channels, out, 3, dilation=dilation)
        self.se = SqueezeExcite(out)

    def forward(self, x: Tensor) -> Tensor:
        return self.se(self.conv(x))


@register_branch("dilated_se")
def dilated_se(in_channels: int, *, out: int, dilation: int = 2) -> nn.Module:
    """A dilated 3x3 conv-norm-act, then squeeze-and-excitation."""
    return DilatedSE(in_channels, out, dilation)


class Scaled(nn.Module):
    def __init__(self, in_channels: int, out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) * float(np.sqrt(2.0))


@register_branch("scaled")
def scaled(in_channels: int, *, out: int) -> nn.Module:
    return Scaled(in_channels, out)
'''

# Runs in `python -I`: imports of BLOCKED raise, so the files must make do with torch.
STANDALONE = r"""
import importlib.abc, importlib.util, json, sys

job = json.loads(sys.argv[1])
blocked = set(job["blocked"])


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} is blocked in this test")


sys.meta_path.insert(0, Blocker())
import torch

results = {}
for name, case in job["cases"].items():
    spec = importlib.util.spec_from_file_location(name, case["py"])
    exported = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exported)
    images, expected = torch.load(case["images"]), torch.load(case["expected"])
    model = exported.load(case.get("weights"))  # None: the weights beside the file
    with torch.inference_mode():
        py = model(images)
    results[name] = {"py": (py - expected).abs().max().item(), "scale": expected.abs().max().item()}
    if "pt2" in case:
        program = torch.export.load(case["pt2"]).module()
        pt2, pt2_one = program(images), program(images[:1])
        results[name] |= {
            "pt2": (pt2 - expected).abs().max().item(),
            "pt2_one": (pt2_one - expected[:1]).abs().max().item(),
            "py_pt2": (py - pt2).abs().max().item(),
        }
    if images.shape[-1] == exported.SIZE:  # predict() takes the declared size only
        results[name] |= {"predict": exported.predict(images, model), "classes": list(exported.CLASSES)}
results["imported"] = sorted({name.split(".")[0] for name in sys.modules} & blocked)
print(json.dumps(results))
"""


def builtins_spec(small: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Built-in plugins with a GELU branch, an avgpool downsample and an aux head (left out on export)."""
    small["stages"][0]["modules"][0]["branches"][1]["act"] = "gelu"
    small["stages"][1]["downsample"] = {"type": "avgpool"}
    small["aux"] = [{"after": "0.0", "pool": 5, "stride": 3, "conv": 8, "hidden": 16}]
    return small


def user_plugins_spec(small: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The example NiN stem and the user's squeeze-and-excitation branch, from their own files."""
    (tmp_path / "user_branches.py").write_text(USER_BRANCHES)
    small["plugins"] = [str(NIN), str(tmp_path / "user_branches.py")]
    small["stem"] = {"type": "nin", "out": 16}
    small["stages"][0]["modules"][0]["branches"][2] = {"type": "dilated_se", "out": 8}
    small["stages"][1]["modules"][0]["branches"].append({"type": "dilated_se", "out": 8, "dilation": 3})
    return small


def no_norm_spec(small: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The 2014 network's kind of layer: no batch norm, convolutions with biases."""
    small["defaults"] = {"norm": "none"}
    return small


def expected_outputs(directory: Path, model: nn.Module, spec: dict[str, Any]) -> dict[str, str]:
    """Save three images and the sandbox network's outputs for them; their paths."""
    images = torch.rand(3, spec["input"]["channels"], spec["input"]["size"], spec["input"]["size"])
    with torch.inference_mode():
        expected = model.eval()(images)
    torch.save(images, directory / "images.pt")
    torch.save(expected, directory / "expected.pt")
    return {"images": str(directory / "images.pt"), "expected": str(directory / "expected.pt")}


def run_standalone(cases: dict[str, dict[str, str]], cwd: Path) -> dict[str, Any]:
    """Run exported files in a fresh interpreter where only torch (and the standard library) imports."""
    job = json.dumps({"cases": cases, "blocked": BLOCKED})
    # one thread, as the sandbox trains: on a busy 2-core machine OpenMP's spinning threads made these
    # small-image forward passes 10x slower (the shipped networks': 20 s against 2 s)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-I", "-c", STANDALONE, job], capture_output=True, text=True, cwd=cwd, env=env
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def ruff(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruff", *map(str, args)], capture_output=True, text=True)


@pytest.mark.slow  # one subprocess per exported network, each importing torch
def test_exported_files_compute_the_sandbox_network_with_torch_alone(
    small_spec: Callable[[], dict[str, Any]], tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """Built-in plugins, user plugins from their own files, no batch norm: .py and .pt2 of each, one interpreter."""
    cases = {}
    for make_spec in (builtins_spec, user_plugins_spec, no_norm_spec):
        name = make_spec.__name__
        directory = tmp_path / name
        directory.mkdir()
        spec = make_spec(small_spec(), directory)
        model = make_run_dir(directory / "run", spec)
        py, pt2 = directory / "out" / "net.py", directory / "out" / "net.pt2"
        assert cli("export", directory / "run", "--out", py).code == 0
        assert cli("export", directory / "run", "--format", "pt2", "--out", pt2).code == 0
        cases[name] = {"py": str(py), "pt2": str(pt2), **expected_outputs(directory, model, spec)}

    results = run_standalone(cases, tmp_path)

    assert results.pop("imported") == []
    for name, result in results.items():
        assert result["py"] <= 1e-5 and result["pt2"] <= 1e-5 and result["py_pt2"] <= 1e-5, (name, result)
        assert result["pt2_one"] <= 1e-5, name  # the batch dimension is dynamic
        for top in result["predict"]:
            assert len(top) == 3 and all(label in result["classes"] for label, _ in top), (name, top)
            assert [p for _, p in top] == sorted((p for _, p in top), reverse=True), (name, top)
    files = [case["py"] for case in cases.values()]
    assert ruff("check", "--isolated", *files).returncode == 0
    assert ruff("check", "--config", REPO / "pyproject.toml", *files).returncode == 0


def test_exported_file_reads_like_hand_written_code(small_spec: Callable[[], dict[str, Any]], tmp_path: Path) -> None:
    spec = builtins_spec(small_spec(), tmp_path)
    make_run_dir(tmp_path / "run", spec)
    py, weights = export(tmp_path / "run", tmp_path / "fmnist.py")
    text = py.read_text()
    tree = ast.parse(text)

    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.col_offset == 0}
    assert {name.split(".")[0] for name in imported} <= {"__future__", "collections", "pathlib", "torch"}
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    assert sorted(classes) == sorted(set(classes)) == ["ConvBNAct", "Head", "Inception", "InceptionNet", "Stage"]
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert functions == {"build", "load", "predict"}
    constants = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert constants == {"CHANNELS", "SIZE", "MEAN", "STD", "CLASSES", "WEIGHTS"}
    docstring = " ".join((ast.get_docstring(tree) or "").split())  # wrapped lines joined
    assert docstring.startswith("small: a GoogLeNet-style network")
    assert "Accuracy: 89.87% on the fashion-mnist test set (10,000 images), 90.12% on validation (6,000" in docstring
    assert "trained 3 epochs, cpu, fp32" in docstring
    assert str(tmp_path / "run" / "metrics.json") in docstring
    assert "parameters" in docstring and "FLOPs per image" in docstring and "aux@" not in docstring
    # The architecture table: one line per branch, widths and the spec's plugin side by side.
    assert "ConvBNAct(16, 8, 1),  # conv1x1 out=8" in text
    assert "nn.Sequential(  # conv3x3 reduce=8 out=16 act=gelu" in text and "ConvBNAct(8, 16, 3, act=nn.GELU())" in text
    assert "downsample=nn.AvgPool2d(2, stride=2, ceil_mode=True),  # avgpool: 28x28 → 14x14" in text
    assert weights == tmp_path / "fmnist.pt"
    assert set(torch.load(weights, weights_only=True)) == {k for k in trained_like(spec).state_dict() if "aux" not in k}


def test_user_plugin_code_is_carried_without_sandbox_decorators(
    small_spec: Callable[[], dict[str, Any]], tmp_path: Path
) -> None:
    spec = user_plugins_spec(small_spec(), tmp_path)
    (tmp_path / "spec.yaml").write_text(json.dumps(spec))
    text = export(tmp_path / "spec.yaml", tmp_path / "net.py")[0].read_text()

    carried = text[text.index("# Carried from user_branches.py") : text.index("def build()")]
    for definition in ("REDUCTION = 4", "class SqueezeExcite(nn.Module):", "class DilatedSE", "def dilated_se("):
        assert carried.count(definition) == 1
    assert "register_branch" not in text and "numpy" not in text and "Scaled" not in text
    assert "def conv_norm_act(" in text  # the torch-only stand-in the carried code calls
    assert "dilated_se(40, out=8, dilation=3),  # dilated_se out=8 dilation=3" in text
    # NiN's layers are plain torch layers, so the stem is written out rather than carried.
    assert "stem=nn.Sequential(ConvBNAct(1, 16, 3), ConvBNAct(16, 16, 1), ConvBNAct(16, 16, 1))" in text
    assert "WEIGHTS = None" in text


def test_plugin_that_needs_more_than_torch_is_refused_with_the_reason(
    small_spec: Callable[[], dict[str, Any]], tmp_path: Path
) -> None:
    spec = user_plugins_spec(small_spec(), tmp_path)
    spec["stages"][0]["modules"][0]["branches"][0] = {"type": "scaled", "out": 8}
    (tmp_path / "spec.yaml").write_text(json.dumps(spec))

    with pytest.raises(SandboxError) as error:
        export(tmp_path / "spec.yaml", tmp_path / "net.py")

    message = str(error.value)
    assert "branch 'scaled'" in message and "user_branches.py:4 imports numpy" in message
    assert "--format pt2" in message and "\n" not in message
    assert not (tmp_path / "net.py").exists()


def test_norm_without_a_torch_twin_is_refused_but_exports_as_pt2(
    small_spec: Callable[[], dict[str, Any]], tmp_path: Path
) -> None:
    spec = small_spec()
    spec["defaults"] = {"norm": "groupnorm"}  # timm's GroupNormAct: 32 groups
    spec["stem"]["out"] = 32
    spec["stages"] = [{"modules": [{"branches": [{"type": "conv1x1", "out": 32}]}]}]
    (tmp_path / "spec.yaml").write_text(json.dumps(spec))

    with pytest.raises(SandboxError, match=r"^stem: stem 'conv3x3' uses timm's GroupNormAct, .* --format pt2"):
        export(tmp_path / "spec.yaml", tmp_path / "net.py")
    assert export(tmp_path / "spec.yaml", tmp_path / "net.pt2", fmt="pt2")[0].is_file()


def test_search_run_exports_its_best_trial(
    small_spec: Callable[[], dict[str, Any]], tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    make_search_dir(tmp_path / "search", small_spec())

    result = cli("export", tmp_path / "search", "--out", tmp_path / "best.py")

    assert result.code == 0, result.err
    assert "best.py (" in result.out and "best.pt (" in result.out
    assert f"best trial of search run {tmp_path / 'search'}" in (tmp_path / "best.py").read_text()


def test_spec_exports_with_or_without_weights(
    small_spec: Callable[[], dict[str, Any]], tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    spec = small_spec()
    (tmp_path / "spec.yaml").write_text(json.dumps(spec))
    model = trained_like(spec)
    torch.save(model.state_dict(), tmp_path / "weights.pt")

    untrained = cli("export", tmp_path / "spec.yaml", "--out", tmp_path / "untrained.py")
    trained = cli("export", tmp_path / "spec.yaml", "--weights", tmp_path / "weights.pt", "--out", tmp_path / "t.py")

    assert untrained.code == 0 and "untrained" in untrained.out and not (tmp_path / "untrained.pt").exists()
    assert trained.code == 0 and (tmp_path / "t.pt").is_file()
    assert torch.equal(torch.load(tmp_path / "t.pt")["head.fc.weight"], model.head.fc.weight)


def test_bad_sources_are_one_line_errors(
    small_spec: Callable[[], dict[str, Any]], tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    (tmp_path / "spec.yaml").write_text(json.dumps(small_spec()))
    (tmp_path / "empty").mkdir()
    torch.save({"stem.conv.weight": torch.zeros(1)}, tmp_path / "wrong.pt")

    cases = {
        "is not a run directory": (tmp_path / "empty",),
        "does not exist": (tmp_path / "missing",),
        "does not fit the spec's network: missing": (tmp_path / "spec.yaml", "--weights", tmp_path / "wrong.pt"),
        "must end in .py": (tmp_path / "spec.yaml", "--out", tmp_path / "net.txt"),
        "must end in .pt2": (tmp_path / "spec.yaml", "--format", "pt2", "--out", tmp_path / "net.py"),
    }
    for message, args in cases.items():
        result = cli("export", *args)
        assert result.code == 2 and message in result.err and result.err.count("\n") == 1, (message, result.err)


@pytest.mark.parametrize("fmt", ["py", "pt2"])  # pt2 was a RuntimeError traceback from torch's writer
@pytest.mark.parametrize("place", ["a-file", "a-directory", "read-only"])
def test_out_where_nothing_can_be_written_is_one_line(
    small_spec: Callable[[], dict[str, Any]], tmp_path: Path, cli: Callable[..., CliResult], place: str, fmt: str
) -> None:
    make_run_dir(tmp_path / "run", small_spec())
    name = f"net.{fmt}"
    if place == "a-file":
        (tmp_path / "taken").write_text("")
        out = tmp_path / "taken" / name
    elif place == "a-directory":
        out = tmp_path / name
        (out / "kept").mkdir(parents=True)
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes in read-only directories")
        (tmp_path / "locked").mkdir(mode=0o555)
        out = tmp_path / "locked" / name

    result = cli("export", tmp_path / "run", "--format", fmt, "--out", out)

    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert result.err.startswith(f"error: cannot write --out {out}")
    assert not out.is_file()
    assert place != "a-directory" or (out / "kept").is_dir()


def test_onnx_export_or_a_clear_message(small_spec: Callable[[], dict[str, Any]], tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(json.dumps(small_spec()))
    try:
        import onnx
        import onnxscript  # noqa: F401
    except ImportError:
        with pytest.raises(SandboxError, match=r"needs the ONNX exporter .*inception-sandbox\[onnx\]"):
            export(tmp_path / "spec.yaml", tmp_path / "net.onnx", fmt="onnx")
    else:
        graph = onnx.load(export(tmp_path / "spec.yaml", tmp_path / "net.onnx", fmt="onnx")[0]).graph
        assert [i.name for i in graph.input] == ["images"] and graph.input[0].type.tensor_type.shape.dim[0].dim_param


def test_onnx_file_describes_itself_and_runs_in_onnxruntime(
    small_spec: Callable[[], dict[str, Any]], tmp_path: Path
) -> None:
    """A search's best exported to ONNX: batch axis `batch`, class names, input and normalization in
    its metadata, and onnxruntime's logits those of the network at any batch size."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    spec = small_spec() | {"normalize": {"mean": [0.25], "std": [0.5]}}
    model = make_search_dir(tmp_path / "search", spec)
    (path,) = export(tmp_path / "search", tmp_path / "net.onnx", fmt="onnx")
    graph = onnx.load(path).graph
    assert [value.type.tensor_type.shape.dim[0].dim_param for value in (*graph.input, *graph.output)] == ["batch"] * 2
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert json.loads(meta["class_names"])[-1] == "Ankle boot"  # the dataset metrics.json names
    assert json.loads(meta["input"])["shape"] == ["batch", 1, 28, 28]
    assert json.loads(meta["normalization"])["mean"] == [0.25] and "best trial" in meta["source"]
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map["class_names"] == meta["class_names"]
    images = torch.rand(3, 1, 28, 28)
    (logits,) = session.run(["logits"], {"images": images.numpy()})
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(logits), model(images), atol=1e-4)


def test_googlenet_exports_and_passes_ruff(tmp_path: Path) -> None:
    py = export(REPO / "search_spaces" / "googlenet.yaml", tmp_path / "googlenet.py")[0]  # checked against the network

    text = py.read_text()
    assert len(text.splitlines()) < 300
    assert "6,624,904 parameters, 2,996,752,384 FLOPs per image" in text
    assert (
        "conv1=ConvBNAct(3, 64, 7, stride=2)," in text and "self.bn = nn.BatchNorm2d(out_channels, eps=0.001)" in text
    )
    assert ruff("check", "--isolated", py).returncode == 0


def test_torch_only_conv_norm_act_matches_sandbox_layers() -> None:
    namespace: dict[str, Any] = {"nn": nn}
    exec(LAYERS_STANDIN, namespace)
    standin = namespace["conv_norm_act"]
    assert inspect.signature(standin).parameters.keys() == inspect.signature(conv_norm_act).parameters.keys()
    for kernel, options in (
        (3, {}),
        (3, {"norm": "none"}),
        (3, {"act": "gelu", "stride": 2, "norm_eps": 1e-3}),
        (3, {"dilation": 2}),
        ((1, 7), {"stride": 2}),
        ([7, 1], {"norm": "none", "padding": [1, 0]}),
        (3, {"padding": 0, "groups": 2, "stride": 2}),
    ):
        torch.manual_seed(0)
        ours, theirs = standin(4, 4, kernel, **options).eval(), conv_norm_act(4, 4, kernel, **options).eval()
        ours.load_state_dict(theirs.state_dict())  # strict: same keys
        images = torch.rand(2, 4, 9, 9)
        assert torch.allclose(ours(images), theirs(images), atol=1e-6), (kernel, options)


@pytest.mark.parametrize(
    ("layer", "code"),
    [
        (nn.AvgPool2d(2, ceil_mode=True), "nn.AvgPool2d(2, stride=2, ceil_mode=True)"),  # ceil_mode is not in its repr
        (nn.Conv2d(3, 8, (3, 3), stride=2, padding=(1, 1)), "nn.Conv2d(3, 8, 3, stride=2, padding=1)"),
        (nn.Conv2d(3, 8, (1, 3), bias=False), "nn.Conv2d(3, 8, (1, 3), bias=False)"),
        (nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0), "nn.LocalResponseNorm(5, k=2.0)"),
        (nn.BatchNorm2d(4, eps=1e-3), "nn.BatchNorm2d(4, eps=0.001)"),
        (nn.Linear(3, 4, bias=False), "nn.Linear(3, 4, bias=False)"),
        (nn.Dropout(0.3), "nn.Dropout(p=0.3)"),
        (nn.GELU(approximate="tanh"), 'nn.GELU(approximate="tanh")'),
    ],
)
def test_torch_layers_are_written_as_their_constructor_calls(layer: nn.Module, code: str) -> None:
    written = LayerWriter(Imports()).translate(layer)
    assert written is not None and written.flat() == code


def test_modules_that_are_not_plain_layers_are_not_translated() -> None:
    class Custom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    writer = LayerWriter(Imports())
    assert writer.translate(Custom()) is None
    assert writer.translate(nn.Sequential(nn.ReLU(), Custom())) is None
    assert writer.translate(nn.ModuleList([nn.ReLU()])) is None


def test_standalone_check_blocks_the_sandbox(tmp_path: Path) -> None:
    """The fresh interpreter of the central test really cannot import what it must not need."""
    probe = textwrap.dedent(STANDALONE.split("import torch")[0]) + textwrap.dedent("""
        for name in blocked:
            try:
                __import__(name)
            except ImportError:
                continue
            raise SystemExit(f"{name} imported")
    """)
    done = subprocess.run([sys.executable, "-I", "-c", probe, json.dumps({"blocked": BLOCKED})], capture_output=True)
    assert done.returncode == 0, done.stderr


def test_a_name_with_triple_quotes_and_backslashes_exports_a_file_that_says_it(
    small_spec: Callable[[], dict[str, Any]], tmp_path: Path
) -> None:
    spec = small_spec()
    spec["name"] = 'evil """ name \\ end'  # the docstring ended early: the file did not parse
    (tmp_path / "spec.yaml").write_text(json.dumps(spec))
    (path,) = [p for p in export(tmp_path / "spec.yaml", tmp_path / "net.py") if p.suffix == ".py"]
    assert ast.get_docstring(ast.parse(path.read_text())).startswith('evil """ name \\ end: a GoogLeNet-style')
