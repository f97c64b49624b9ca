"""Fuzzing the CLI: whatever the spec, image or run directory, a command exits 0, 1 or 2 with at most
one line per error and no traceback, and every JSON it prints or writes is strict JSON (no NaN).

The specs come from the spec property tests' mutations; the images are made up in every mode Pillow
reads, at any size a header may declare. Examples per property: $SANDBOX_FUZZ_EXAMPLES (default 10).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sandbox.cli import main
from tests.conftest import SMALL_SPEC
from tests.deadline import deadline
from tests.images import png_header
from tests.run_dirs import make_run_dir
from tests.spec.test_properties import SCALARS, edited_yaml, mutated_specs

EXAMPLES = int(os.environ.get("SANDBOX_FUZZ_EXAMPLES", "10"))  # raise it to hunt for bugs
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F"]
DEEP = {  # mode: numpy type, pixel values to try
    "I;16": (np.uint16, [0, 255, 40000, 65535]),
    "I": (np.int32, [-5, 0, 65535, 70000]),
    "F": (np.float32, [0.0, 0.5, 1.0, -1.0, 300.0, float("nan"), float("inf")]),
}

pytestmark = pytest.mark.usefixtures("isolated_registry")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty working directory, so a `plugins:` entry made of random text imports nothing, with two
    finished runs: one to predict with, one whose metrics.json is fuzzed."""
    path = tmp_path_factory.mktemp("fuzz")
    make_run_dir(path / "run", SMALL_SPEC)
    make_run_dir(path / "metrics_run", SMALL_SPEC)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(path)
        yield path


def cli(*args: str | Path) -> tuple[int, str, list[str]]:
    """Run the CLI in-process: its exit code, stdout and stderr's lines, once those are checked. An exception
    escaping main() would be a traceback, and fails the property as it is."""
    out, err = io.StringIO(), io.StringIO()
    with deadline(60), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    errors = err.getvalue()
    assert code in (0, 1, 2), (code, errors)
    assert "Traceback" not in errors, errors
    assert all(line.startswith(("error: ", "warning: ", "note: ", "data: ")) for line in errors.splitlines()), errors
    assert code != 2 or errors.count("\n") == 1, errors
    return code, out.getvalue(), errors.splitlines()


def strict_json(text: str) -> Any:
    """Parse JSON as any other reader would: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in JSON: {text[:200]}")

    return json.loads(text, parse_constant=refuse)


@FUZZ
@given(spec=mutated_specs())
def test_show_and_export_of_any_spec(workdir: Path, spec: dict[str, Any]) -> None:
    file = workdir / "spec.yaml"
    file.write_text(yaml.safe_dump(spec, sort_keys=False))
    code, out, _ = cli("show", file, "--json")
    if code == 0:
        strict_json(out)
        cli("show", file)
        assert cli("export", file, "--out", workdir / "net.py")[0] == 0  # what shows, exports


@FUZZ
@given(text=edited_yaml() | st.text(max_size=60))
def test_show_of_any_text(workdir: Path, text: str) -> None:
    (workdir / "text.yaml").write_text(text)
    code, out, errors = cli("show", workdir / "text.yaml")
    # either a table (or a space's dimensions) and no error, or nothing but one error line
    assert (code == 0 and out.strip() and not errors) or (code == 2 and not out and len(errors) == 1), (code, out)


@st.composite
def image_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(suffix, bytes): a real image in any mode, a header declaring any size, or any bytes."""
    kind = draw(st.sampled_from(["image", "header", "bytes"]))
    if kind == "header":
        return ".png", png_header(draw(st.integers(1, 2**20)), draw(st.integers(1, 2**20)))
    if kind == "bytes":
        return ".png", draw(st.binary(max_size=64))
    mode = draw(st.sampled_from(MODES))
    width, height = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    image = Image.new(mode, (width, height))
    if mode in DEEP:  # 16-bit, 32-bit and float pixels, whose range is what goes wrong
        dtype, values = DEEP[mode]
        image = Image.fromarray(np.full((height, width), draw(st.sampled_from(values)), dtype))
    buffer = io.BytesIO()
    suffix = draw(st.sampled_from([".tif"] if mode in ("I", "F") else [".png", ".tif", ".jpg"]))  # as Pillow writes
    if suffix == ".jpg" and mode not in ("L", "RGB"):
        image = image.convert("RGB")
    image.save(buffer, format={".png": "PNG", ".tif": "TIFF", ".jpg": "JPEG"}[suffix])
    return suffix, buffer.getvalue()


@FUZZ
@given(files=st.lists(image_files(), min_size=1, max_size=3))
def test_predict_of_any_image(workdir: Path, files: list[tuple[str, bytes]]) -> None:
    paths = [workdir / f"image{i}{suffix}" for i, (suffix, _) in enumerate(files)]
    for path, (_, data) in zip(paths, files, strict=True):
        path.write_bytes(data)
    code, out, errors = cli("predict", workdir / "run", *paths)
    assert len(out.splitlines()) + len(errors) == len(paths)  # one line per image, classified or not
    assert code == (1 if errors else 0)


@FUZZ
@given(metrics=st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["test_accuracy", "val_accuracy", "epochs", "dataset", "device_name", "train_precision",
                     "test", "val", "name"]), inner, max_size=4), max_leaves=8))  # fmt: skip
def test_export_of_a_run_whatever_its_metrics(workdir: Path, metrics: Any) -> None:
    (workdir / "metrics_run" / "metrics.json").write_text(json.dumps(metrics))
    exported = workdir / "from_run.py"
    exported.unlink(missing_ok=True)
    code, _, errors = cli("export", workdir / "metrics_run", "--out", exported)
    assert code in (0, 2)
    assert exported.is_file() == (code == 0)  # written whole, or not at all with one error line
    assert code == 0 or len(errors) == 1


TRAIN_KEYS = ["lr", "min_lr", "weight_decay", "momentum", "label_smoothing", "warmup_epochs", "batch_size"]


@pytest.mark.slow  # each example trains an epoch on the bundled sample
@settings(max_examples=max(3, EXAMPLES // 4), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(train=st.dictionaries(st.sampled_from(TRAIN_KEYS), SCALARS, max_size=2))
def test_train_with_any_recipe_writes_strict_json(workdir: Path, train: dict[str, Any]) -> None:
    spec = SMALL_SPEC | {"train": train | {"epochs": 1}, "data": {"dataset": "fashion-mnist-sample"}}
    (workdir / "train.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    # one thread: on a busy 2-core machine the default two ran the epoch 5x slower, past the deadline
    code, _, _ = cli("train", workdir / "train.yaml", "--out", workdir / "trained", "--device", "cpu", "--threads", "1")
    if code == 0:
        strict_json((workdir / "trained" / "metrics.json").read_text())


# ---------------------------------------------------------------------------- --set values, checkpoints, data files

SET_KEYS = ["stem.out", "train.lr", "train.batch_size", "head.dropout", "input.size", "name", "data", "stages[0]",
            "stages[1].modules[0].branches[0].out", "defaults.norm", "bogus.key"]  # fmt: skip


@pytest.mark.slow
@FUZZ
@given(key=st.sampled_from(SET_KEYS), value=edited_yaml() | st.text(max_size=40))
def test_show_with_any_set_value(workdir: Path, key: str, value: str) -> None:
    (workdir / "set.yaml").write_text(yaml.safe_dump(SMALL_SPEC, sort_keys=False))
    code, out, errors = cli("show", workdir / "set.yaml", "--set", f"{key}={value}")
    assert (code == 0 and not errors) or (code == 2 and len(errors) == 1 and len(errors[0]) <= 2_100)


CHECKPOINT_KEYS = ["model", "optimizer", "scheduler", "ema", "generator", "history", "identity", "format"]


@st.composite
def checkpoint_bytes(draw: st.DrawFn) -> bytes:
    """Random bytes, a truncated real pickle, or a torch file of a mapping with the checkpoint's keys
    holding anything."""
    import torch

    kind = draw(st.sampled_from(["bytes", "mapping"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    mapping = draw(st.dictionaries(st.sampled_from(CHECKPOINT_KEYS), SCALARS | st.lists(SCALARS, max_size=3)))
    buffer = io.BytesIO()
    torch.save(mapping, buffer)
    data = buffer.getvalue()
    return data[: draw(st.integers(1, len(data)))] if draw(st.booleans()) else data


@pytest.mark.slow
@FUZZ
@given(data=checkpoint_bytes())
def test_resume_from_any_checkpoint_is_refused_and_touches_nothing(workdir: Path, data: bytes) -> None:
    run = workdir / "resumed"
    if not run.exists():
        make_run_dir(run, SMALL_SPEC)
    (run / "checkpoint.pt").write_bytes(data)
    before = {path.name: path.read_bytes() for path in run.iterdir() if path.is_file()}
    code, _, errors = cli("train", "--resume", run, "--device", "cpu")
    assert code == 2 and len(errors) == 1, errors
    assert {path.name: path.read_bytes() for path in run.iterdir() if path.is_file()} == before


@pytest.mark.slow
@FUZZ
@given(
    kind=st.sampled_from(["idx-images", "idx-labels", "cifar"]), data=st.binary(max_size=400), keep=st.integers(0, 64)
)
def test_any_dataset_file_loads_or_is_one_error_line(tmp_path_factory, kind: str, data: bytes, keep: int) -> None:
    from sandbox.errors import SandboxError
    from sandbox.spec.recipe import DataConfig
    from sandbox.train.data import load
    from tests.cifar import write_cifar
    from tests.idx import write_fashion_mnist

    root = tmp_path_factory.mktemp("data")
    if kind == "cifar":
        write_cifar(root, train=20, test=10)
        target, dataset = root / "cifar-10-batches-py" / "data_batch_1", "cifar10"
    else:
        write_fashion_mnist(root, train=30, test=10)
        part = "images-idx3" if kind == "idx-images" else "labels-idx1"
        target, dataset = root / "FashionMNIST" / "raw" / f"train-{part}-ubyte", "fashion-mnist"
    target.write_bytes(target.read_bytes()[:keep] + data)  # a real header, or part of one, then anything
    try:
        loaded = load(DataConfig(dataset, root, 0.2), "cpu")  # type: ignore[arg-type]
    except SandboxError as err:
        assert "\n" not in str(err) and len(str(err)) <= 2_100
    else:
        assert len(loaded.train) + len(loaded.val) > 0 and len(loaded.classes) == 10
