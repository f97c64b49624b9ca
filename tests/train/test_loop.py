"""The trainer, the run directory and the `train` / `evaluate` commands, on tiny synthetic IDX files.

Unit tests train a ~1 MFLOP network on a few hundred synthetic 28x28 images (under a second per
run); `slow` tests train on the bundled 5,699-image sample for one short epoch.
"""

from __future__ import annotations

import copy
import json
import os
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file

import sandbox.train.loop
from sandbox.cli import main
from sandbox.errors import SandboxError, SpecError
from sandbox.model.flops import count
from sandbox.runs import METRICS_FILE, SPEC_FILE, WEIGHTS_FILE, open_run
from sandbox.spec.load import load_spec
from sandbox.spec.recipe import Augment, DataConfig, TrainConfig, train_config
from sandbox.train.device import resolve_device, uses_bf16
from sandbox.train.history import HISTORY_FILE
from sandbox.train.loop import TrainingError, accuracy, train_run
from tests.paths import SEARCH_SPACES

TINY: dict[str, Any] = {
    "name": "tiny",
    "input": {"channels": 1, "size": 28},
    "classes": 10,
    "stem": {"type": "conv3x3", "out": 8},
    "stages": [
        {
            "downsample": {"type": "maxpool"},
            "modules": [
                {
                    "branches": [
                        {"type": "conv1x1", "out": 8},
                        {"type": "conv3x3", "reduce": 8, "out": 8},
                        {"type": "pool_proj", "out": 8},
                    ]
                }
            ],
        }
    ],
    "head": {"dropout": 0.0},
    "train": {"epochs": 2, "batch_size": 32, "lr": 0.05, "warmup_epochs": 0},
}
FIELDS = {"loss", "train_accuracy", "val_loss", "val_accuracy", "lr_peak", "lr_mean", "images_per_second"}


def tiny(data_root: Path | None = None, **train: Any) -> dict[str, Any]:
    raw = copy.deepcopy(TINY)
    raw["train"].update(train)
    if data_root is not None:
        raw["data"] = {"root": str(data_root), "val_fraction": 0.2}
    return raw


def run(raw: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return train_run(load_spec(raw), device="cpu", progress=False, **kwargs)


# ---------------------------------------------------------------------------- configuration


def test_train_config_defaults_and_overrides() -> None:
    config = train_config({"lr": 1, "augment": {"crop": 0}, "compile": "max-autotune"})
    assert config.lr == 1.0 and isinstance(config.lr, float)
    assert config.augment == Augment(crop=0, flip=True) and config.compile == "max-autotune"
    assert config.with_overrides(epochs=3, seed=None).epochs == 3
    assert train_config({"augment": False}).augment == Augment(crop=0, flip=False)
    assert train_config({}) == TrainConfig()


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"lr": 0}, "train.lr"),
        ({"lr": "fast"}, "train.lr"),
        ({"epochs": 0}, "train.epochs"),
        ({"epochs": 2.5}, "train.epochs"),
        ({"batch_size": True}, "train.batch_size"),
        ({"label_smoothing": 1.0}, "train.label_smoothing"),
        ({"optimizer": "adamx"}, "train.optimizer"),
        ({"schedule": "linear"}, "train.schedule"),
        ({"precision": "fp16"}, "train.precision"),
        ({"compile": "fast"}, "train.compile"),
        ({"augment": {"rotate": 10}}, "train.augment.rotate"),
        ({"augment": {"crop": -1}}, "train.augment.crop"),
        ({"learning_rate": 0.1}, "train.learning_rate"),
        ({"seed": 2**32}, "train.seed"),  # was a ValueError traceback from NumPy's seeding
    ],
)
def test_bad_train_values_name_their_key(raw: dict[str, Any], path: str) -> None:
    with pytest.raises(SpecError) as err:
        train_config(raw)
    assert err.value.path == path


def test_shipped_baseline_is_a_30_mflop_inception_net_on_the_sample() -> None:
    spec = load_spec(SEARCH_SPACES / "fmnist_baseline.yaml")
    assert 25e6 < count(spec).flops < 35e6
    assert spec.stem.type == "conv3x3" and 2 <= len(spec.stages) <= 3
    assert spec.data == DataConfig(dataset="fashion-mnist-sample")
    assert spec.train.epochs == 15


def test_bf16_is_auto_only_where_it_pays() -> None:
    assert uses_bf16("bf16", torch.device("cpu")) and not uses_bf16("fp32", torch.device("cpu"))
    has_amx = bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    assert uses_bf16("auto", torch.device("cpu")) == has_amx


# ---------------------------------------------------------------------------- training


def test_train_run_writes_a_complete_run_directory(synthetic: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    seen: list[tuple[int, dict[str, Any]]] = []
    metrics = run(tiny(synthetic), out_dir=out, on_epoch=lambda i, r: seen.append((i, r)))
    assert [i for i, _ in seen] == [0, 1]
    assert {k: metrics["dataset"][k] for k in ("name", "train", "val", "test")} == {
        "name": "fashion-mnist", "train": 240, "val": 60, "test": 100
    }  # fmt: skip
    assert metrics["dataset"]["class_names"][-1] == "Ankle boot" and metrics["dataset"]["input"] == [1, 28, 28]
    assert metrics["epochs"] == 2 and len(metrics["history"]) == 2
    assert all(record.keys() >= FIELDS for record in metrics["history"])
    assert 0 <= metrics["val_accuracy"] <= 1 and 0 <= metrics["test_accuracy"] <= 1
    assert metrics["params"] > 0 and metrics["flops"] > 0 and metrics["train_images_per_second"] > 0
    assert metrics["device"] == "cpu" and metrics["seconds"] > 0
    assert metrics["history"][-1]["loss"] < metrics["history"][0]["loss"]
    assert json.loads((out / METRICS_FILE).read_text()) == json.loads(json.dumps(metrics))
    assert yaml.safe_load((out / SPEC_FILE).read_text())["name"] == "tiny"
    # The saved weights give back the recorded test accuracy.
    opened = open_run(out)
    spec, model = opened.spec, opened.model
    assert spec.name == "tiny" and not model.training
    from sandbox.train.data import load

    data = load(spec.data, "cpu")
    assert accuracy(model, data.test, batch=spec.train.batch_size) == metrics["test_accuracy"]  # fp32, eval, NCHW


def test_same_seed_same_metrics_other_seed_other_metrics(synthetic: Path) -> None:
    def scores(seed: int) -> list[tuple[float, float]]:
        metrics = run(tiny(synthetic), seed=seed)
        return [(r["loss"], r["val_accuracy"]) for r in metrics["history"]] + [(metrics["test_accuracy"], 0)]

    first = scores(1)
    assert scores(1) == first
    assert scores(2) != first


def test_history_logs_what_the_epoch_trained_with_and_training_is_unchanged(synthetic: Path, tmp_path: Path) -> None:
    """The logged figures are consistent, and logging them (from the step's own logits, summed on the
    device) leaves training as it was: two runs with one seed save equal weights."""
    raw = tiny(synthetic, epochs=1, lr=0.2)
    first = run(raw, out_dir=tmp_path / "a")
    (record,) = first["history"]
    assert record["lr_peak"] == 0.2 and 0 < record["lr_mean"] < 0.2  # the cosine within the epoch; after it, 0
    assert 0 <= record["train_accuracy"] <= 1 and 0 <= record["val_accuracy"] <= 1
    assert 0 < record["val_loss"] < 10 and record["val_accuracy"] == first["val_accuracy"]  # fp32, no EMA
    run(raw, out_dir=tmp_path / "b")
    weights = [load_file(str(tmp_path / d / WEIGHTS_FILE)) for d in ("a", "b")]
    assert weights[0].keys() == weights[1].keys() and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    warm = run(tiny(synthetic, epochs=2, lr=0.2, warmup_epochs=1))["history"]
    assert warm[0]["lr_mean"] < warm[0]["lr_peak"] < 0.2  # the warmup's ramp, steps after the first


def test_learns_the_synthetic_classes(synthetic: Path) -> None:
    metrics = run(tiny(synthetic, epochs=4, lr=0.1))
    assert metrics["test_accuracy"] > 0.5  # chance is 0.1


def test_aux_heads_add_their_weighted_loss(synthetic: Path) -> None:
    raw = tiny(synthetic, epochs=1)
    raw["aux"] = [{"after": "0.0", "pool": 3, "stride": 2, "conv": 8, "hidden": 16, "weight": 0.5}]
    with_aux = run(raw)["history"][0]["loss"]
    without = run({**raw, "train": {**raw["train"], "aux_weight": 0.0}})["history"][0]["loss"]
    assert with_aux > without  # the aux loss (about ln 10 at first) is added on top


def test_non_finite_loss_stops_the_run(synthetic: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="non-finite|nan|inf") as err:
        run(tiny(synthetic, lr=1e30, optimizer="momentum", weight_decay=0), out_dir=tmp_path / "run")
    assert "train.lr" in str(err.value)
    assert not (tmp_path / "run" / METRICS_FILE).exists() and not (tmp_path / "run" / WEIGHTS_FILE).exists()


def test_an_exception_from_on_epoch_leaves_no_complete_looking_run(synthetic: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / METRICS_FILE).write_text('{"test_accuracy": 0.99}')  # a previous run's

    class Pruned(Exception):
        pass

    def prune(index: int, record: dict[str, Any]) -> None:
        raise Pruned

    with pytest.raises(Pruned):
        run(tiny(synthetic), out_dir=out, on_epoch=prune)
    assert sorted(p.name for p in out.iterdir()) == [HISTORY_FILE, SPEC_FILE]  # the epochs so far, no weights


def test_unwritable_out_is_an_error_before_training(synthetic: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SandboxError, match="cannot write the run directory"):
        run(tiny(synthetic), out_dir=blocker / "run", on_epoch=pytest.fail)


def test_input_channels_the_data_cannot_become_are_a_spec_error(synthetic: Path) -> None:
    raw = tiny(synthetic)
    raw["input"] = {"channels": 4, "size": 28}  # 1 and 3 are converted to (tests/train/test_data_shape.py)
    with pytest.raises(SpecError) as err:
        run(raw)
    assert err.value.path == "input.channels" and "not 4" in str(err.value)


def test_out_of_memory_is_reported_as_such(synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def exhausted(*args: Any, **kwargs: Any) -> Any:
        def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

        return loss_of

    monkeypatch.setattr(sandbox.train.loop, "_loss_function", exhausted)
    with pytest.raises(TrainingError, match="out of memory on cpu with batch_size 32: lower train.batch_size"):
        run(tiny(synthetic), out_dir=tmp_path / "run")
    assert not (tmp_path / "run" / METRICS_FILE).exists()


class Stopped(Exception):
    """What a search's pruner raises from the epoch hook."""


@pytest.mark.parametrize("ending", ["out of memory", "pruned", "finished"])
def test_a_run_gives_its_memory_back_once_nothing_holds_the_model(
    synthetic: Path, monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    """After a trial, pruned or out of memory included, the model is unreachable when the cache is emptied:
    an exception's traceback would otherwise keep it (and on a GPU, its memory) until the next trial."""
    built: list[weakref.ref] = []
    real_build = sandbox.train.loop.build

    def build(*args: Any, **kwargs: Any) -> torch.nn.Module:
        model = real_build(*args, **kwargs)
        built.append(weakref.ref(model))
        return model

    released: list[bool] = []
    real_release = sandbox.train.loop.release

    def release(device: torch.device, *, compiled: bool) -> None:
        real_release(device, compiled=compiled)
        released.append(all(ref() is None for ref in built))

    def hook(epoch: int, record: dict[str, Any]) -> None:
        if ending == "pruned":
            raise Stopped
        if ending == "out of memory":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(sandbox.train.loop, "build", build)
    monkeypatch.setattr(sandbox.train.loop, "release", release)
    expected = {"pruned": Stopped, "out of memory": TrainingError}.get(ending)
    if expected is None:
        run(tiny(synthetic, epochs=1), on_epoch=hook)
    else:
        with pytest.raises(expected):
            run(tiny(synthetic, epochs=1), on_epoch=hook)
    assert built and released == [True]


def test_evaluation_pads_the_last_batch_to_the_training_shape(synthetic: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_spec(tiny(synthetic))
    model = sandbox.train.loop.build(spec, device="cpu").eval()
    from sandbox.train.data import load

    split = load(spec.data, "cpu").test  # 100 images
    shapes: list[int] = []
    model.register_forward_pre_hook(lambda module, inputs: shapes.append(inputs[0].shape[0]))
    predicted = sandbox.train.loop.predict(model, split, batch=32)
    assert shapes == [32, 32, 32, 32] and predicted.shape == (100,)
    assert torch.equal(predicted, sandbox.train.loop.predict(model, split, batch=100))  # padding changes nothing


@pytest.mark.parametrize("device", ["gpu", "mps", "cuda:x"])
def test_unknown_devices_are_sandbox_errors(device: str) -> None:
    with pytest.raises(SandboxError, match="device"):
        resolve_device(device)


def test_cuda_without_a_gpu_is_a_clear_error(synthetic: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SandboxError, match="no CUDA GPU"):
        train_run(load_spec(tiny(synthetic)), device="cuda")


# ---------------------------------------------------------------------------- commands


def write_spec(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_train_and_evaluate_commands(
    synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], precision: str
) -> None:
    """`evaluate` re-measures exactly what metrics.json recorded, whatever precision the steps ran in."""
    raw = tiny(synthetic)
    raw["train"] = {**raw.get("train", {}), "precision": precision}
    spec = write_spec(tmp_path, raw)
    out = tmp_path / "run"
    threads = torch.get_num_threads()
    try:
        args = ["--out", str(out), "--epochs", "1", "--device", "cpu", "--seed", "3", "--threads", "1"]
        assert main(["train", str(spec), *args]) == 0
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert "epoch 1/1: train loss" in printed and "val loss" in printed and "test accuracy" in printed
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert metrics["epochs"] == 1 and metrics["seed"] == 3 and metrics["threads"] == 1
    assert metrics["train_precision"] == precision and metrics["eval_precision"] == "fp32"
    assert main(["evaluate", str(out), "--device", "cpu"]) == 0
    table = capsys.readouterr().out
    assert "Ankle boot" in table and "T-shirt/top" in table
    total = next(line for line in table.splitlines() if line.startswith("all"))
    assert f"{metrics['test_accuracy']:.2%}" in total


def test_evaluate_takes_a_search_run_directory_as_its_best(
    synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    search = tmp_path / "search"  # what `sandbox search` leaves: best/ is the best trial's run directory
    metrics = run(tiny(synthetic, epochs=1), out_dir=search / "best")
    (search / "trials").mkdir()
    capsys.readouterr()
    assert main(["evaluate", str(search), "--device", "cpu"]) == 0
    total = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("all"))
    assert f"{metrics['test_accuracy']:.2%}" in total
    assert main(["evaluate", str(search / "trials"), "--device", "cpu"]) == 2  # neither kind: one line
    assert "is not a run directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("section", "values", "path"),
    [
        ("train", {"lr": -1}, "train.lr"),
        ("train", {"batch_size": "big"}, "train.batch_size"),
        ("data", {"dataset": "imagenet"}, "data.dataset"),
        ("data", {"val_fraction": 2}, "data.val_fraction"),
    ],
)
def test_bad_values_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, values: dict, path: str
) -> None:
    raw = tiny()
    raw[section] = {**raw.get(section, {}), **values}
    assert main(["train", str(write_spec(tmp_path, raw)), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_evaluate_reports_unreadable_weights(
    synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    run(tiny(synthetic, epochs=1), out_dir=out)
    (out / WEIGHTS_FILE).write_bytes(b"not safetensors")
    capsys.readouterr()  # what training said (the carved validation split)
    assert main(["evaluate", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read weights ") and err.count("\n") == 1


def test_evaluate_refuses_an_unfinished_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "run").mkdir()
    assert main(["evaluate", str(tmp_path / "run")]) == 2
    assert "is not a run directory" in capsys.readouterr().err


# ---------------------------------------------------------------------------- bundled sample and GPU


@pytest.mark.slow
def test_one_short_epoch_on_the_bundled_sample(tmp_path: Path) -> None:
    raw = tiny(batch_size=64, lr=0.2)
    raw["data"] = {"dataset": "fashion-mnist-sample"}
    metrics = run(raw, epochs=1, out_dir=tmp_path / "run")
    sizes = {key: metrics["dataset"][key] for key in ("name", "train", "val", "test")}
    assert sizes == {"name": "fashion-mnist-sample", "train": 5129, "val": 570, "test": 2000}
    assert metrics["test_accuracy"] > 0.5  # one epoch of a 0.6 MFLOP network: about 0.6; chance is 0.1


@pytest.mark.gpu
def test_cuda_bf16_training(synthetic: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    # 20 epochs: on the CPU, seeds 0-3 of this spec reach 1.00 test accuracy (3 epochs gave 0.50 to 0.75).
    metrics = train_run(load_spec(tiny(synthetic, epochs=20, lr=0.1)), device="cuda", progress=False)
    assert metrics["train_precision"] == "bf16" and metrics["device"].startswith("cuda")
    assert metrics["test_accuracy"] > 0.9


def test_metrics_json_is_strict_json_even_with_a_non_finite_figure(tmp_path: Path) -> None:
    from sandbox.runs import write_metrics

    write_metrics(tmp_path, {"images_per_second": float("inf"), "history": [{"loss": float("nan"), "epoch": 1}]})
    text = (tmp_path / METRICS_FILE).read_text()
    strict = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert strict == {"images_per_second": None, "history": [{"loss": None, "epoch": 1}]}


@pytest.mark.parametrize(
    ("link", "named"), [(".spec.yaml.{pid}.tmp", "{out}/spec.yaml"), ("history.csv", "the run directory {out}")]
)
def test_a_full_disk_stops_train_in_one_line(
    synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], link: str, named: str
) -> None:
    """/dev/full answers every write with ENOSPC, as a full disk does; spec.yaml's temporary name is linked to it."""
    spec, out = write_spec(tmp_path, tiny(synthetic, epochs=1)), tmp_path / "run"
    out.mkdir()
    (out / link.format(pid=os.getpid())).symlink_to("/dev/full")
    assert main(["train", str(spec), "--out", str(out), "--device", "cpu", "--threads", "1"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].endswith(f"cannot write {named.format(out=out)}: No space left on device")
    assert not (out / "metrics.json").exists()


def test_a_batch_larger_than_the_training_split_is_clamped_and_said(synthetic: Path) -> None:
    """batch_size 100000 on 5,129 images took 7.7 GB: evaluation padded every batch to 100,000 images."""
    said: list[str] = []
    metrics = train_run(load_spec(tiny(synthetic, epochs=1, batch_size=100_000)), device="cpu", say=said.append)
    assert metrics["train"]["batch_size"] == 240  # the training split: 300 images less the carved 20%
    assert "train.batch_size 100,000 is more than the 240 training images: batches of 240" in said
