"""The trainer's recipe options end to end on tiny synthetic data: augmentation, mixup, EMA, clipping,
fine-tuning and freezing, history.csv, TensorBoard, curves.png, checkpoints and resume."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import sandbox.train.history
from sandbox.cli import main
from sandbox.errors import SandboxError, SpecError
from sandbox.runs import METRICS_FILE, WEIGHTS_FILE
from sandbox.spec.load import load_spec
from sandbox.train.checkpoint import CHECKPOINT_FILE
from sandbox.train.history import CURVES_FILE, EVENTS_DIR, HISTORY_FILE, SCALARS
from sandbox.train.loop import train_run
from tests.paths import REPO
from tests.train.test_loop import run, tiny, write_spec

TIMING = {"images_per_second", "seconds"}
EVERYTHING = {  # every random stream the loop draws from: dropout, resized crop, RandAugment, mixup, EMA
    "augment": {"resized_crop": {"scale": [0.5, 1]}, "randaugment": {"group": 8}, "mixup": 0.4, "cutmix": 1.0},
    "ema": 0.9,
    "ema_warmup": True,
    "clip_grad": 5.0,
}


class Stop(Exception):
    """Stands in for a kill after an epoch."""


def with_dropout(raw: dict[str, Any]) -> dict[str, Any]:
    return {**raw, "head": {"dropout": 0.5}}


def results(metrics: dict[str, Any]) -> tuple[Any, ...]:
    """What must not depend on an interruption: every epoch's figures but the timings, and the final accuracies."""
    history = [{k: v for k, v in record.items() if k not in TIMING} for record in metrics["history"]]
    return history, metrics["val_accuracy"], metrics["test_accuracy"]


def rows(out: Path) -> list[dict[str, str]]:
    with (out / HISTORY_FILE).open() as file:
        return list(csv.DictReader(file))


def test_every_option_trains_and_the_ema_weights_are_the_ones_measured_and_saved(
    synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = with_dropout(tiny(synthetic, **EVERYTHING))
    metrics = run(raw, out_dir=tmp_path / "ema")
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in metrics["history"])
    assert metrics["train"]["ema"] == 0.9 and metrics["train"]["augment"]["randaugment"]["group"] == 8
    no_ema = run({**raw, "train": {**raw["train"], "ema": None}}, out_dir=tmp_path / "raw")
    assert results(no_ema)[0][0]["loss"] == results(metrics)[0][0]["loss"]  # EMA changes no training step
    ema_weights, raw_weights = (load_file(str(tmp_path / d / WEIGHTS_FILE)) for d in ("ema", "raw"))
    assert any(not torch.equal(ema_weights[k], raw_weights[k]) for k in ema_weights)  # the EMA's were saved
    assert main(["evaluate", str(tmp_path / "ema"), "--device", "cpu"]) == 0
    total = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("all"))
    assert f"{metrics['test_accuracy']:.2%}" in total  # the saved weights are the ones measured


def test_clipping_holds_the_weights_back(synthetic: Path) -> None:
    free = run(tiny(synthetic, weight_decay=0))["history"]
    clipped = run(tiny(synthetic, weight_decay=0, clip_grad=1e-9))["history"]
    assert abs(clipped[1]["loss"] - clipped[0]["loss"]) < 0.02 < abs(free[1]["loss"] - free[0]["loss"])


def test_history_csv_grows_as_training_goes(synthetic: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    seen: list[int] = []
    run(tiny(synthetic, epochs=3), out_dir=out, on_epoch=lambda i, r: seen.append(len(rows(out))))
    assert seen == [1, 2, 3]
    table = rows(out)
    assert [int(r["epoch"]) for r in table] == [1, 2, 3]
    assert {"loss", "train_accuracy", "val_loss", "val_accuracy", "lr_peak", "lr_mean"} <= table[0].keys()
    # A plain run (what a search trial is) writes no checkpoint, no events and no plot.
    assert not {CHECKPOINT_FILE, CURVES_FILE, EVENTS_DIR} & {p.name for p in out.iterdir()}


def test_watching_draws_curves_and_skips_tensorboard_when_absent(
    synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox.train.history, "summary_writer_class", lambda: None)
    said: list[str] = []
    train_run(load_spec(tiny(synthetic)), out_dir=tmp_path / "run", device="cpu", progress=False, watch=True,
              say=said.append)  # fmt: skip
    assert (tmp_path / "run" / CURVES_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "run" / EVENTS_DIR).exists()
    assert any("tensorboard is not installed" in line for line in said)


def test_tensorboard_gets_every_epoch_when_installed(
    synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, float, int]] = []
    opened: list[dict[str, Any]] = []

    class Writer:
        def __init__(self, **kwargs: Any) -> None:
            opened.append(kwargs)

        def add_scalar(self, key: str, value: float, step: int) -> None:
            events.append((key, value, step))

        def flush(self) -> None:
            pass

        def close(self) -> None:
            opened.append({"closed": True})

    monkeypatch.setattr(sandbox.train.history, "summary_writer_class", lambda: Writer)
    metrics = train_run(load_spec(tiny(synthetic)), out_dir=tmp_path / "run", device="cpu", progress=False, watch=True)
    assert opened == [{"log_dir": str(tmp_path / "run" / EVENTS_DIR), "purge_step": 1}, {"closed": True}]
    assert ("val_accuracy", metrics["history"][1]["val_accuracy"], 2) in events
    assert {key for key, _, _ in events} == set(SCALARS)


def test_a_resumed_run_ends_as_an_uninterrupted_one(synthetic: Path, tmp_path: Path) -> None:
    raw = with_dropout(tiny(synthetic, epochs=3, checkpoint_every=1, **EVERYTHING))
    straight = run(raw, out_dir=tmp_path / "straight")

    def stop_after_two(index: int, record: dict[str, Any]) -> None:
        if index == 1:
            raise Stop

    out = tmp_path / "stopped"
    with pytest.raises(Stop):
        run(raw, out_dir=out, on_epoch=stop_after_two)
    assert not (out / METRICS_FILE).exists() and len(rows(out)) == 2
    torch.manual_seed(12345)  # the resumed process's global RNG is anything at all
    said: list[str] = []
    resumed = train_run(load_spec(raw), out_dir=out, device="cpu", progress=False, resume=True, say=said.append)
    assert said[0] == f"resuming {out} after epoch 2 of 3"
    assert results(resumed) == results(straight) and resumed["resumed_after_epoch"] == 2
    assert [r["epoch"] for r in rows(out)] == ["1", "2", "3"]  # the resumed epochs appended, none twice
    same, other = (load_file(str(d / WEIGHTS_FILE)) for d in (out, tmp_path / "straight"))
    assert all(torch.equal(same[k], other[k]) for k in same)


def files_of(out: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `out`, with its content and modification time: what a refusal must leave alone."""
    return {str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}


def test_resume_refuses_another_recipe_or_no_checkpoint_and_touches_no_file(synthetic: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(tiny(synthetic, epochs=1, checkpoint_every=1), out_dir=out)
    finished = files_of(out)
    assert METRICS_FILE in finished
    with pytest.raises(SandboxError, match=r"another spec or recipe \(train\.lr: 0\.05 in the checkpoint, 0\.1 now\)"):
        train_run(load_spec(tiny(synthetic, epochs=1, checkpoint_every=1, lr=0.1)), out_dir=out, device="cpu",
                  resume=True)  # fmt: skip
    with pytest.raises(SandboxError, match=r"train\.epochs: 1 in the checkpoint, 2 now"):
        train_run(load_spec(tiny(synthetic, checkpoint_every=1)), out_dir=out, epochs=2, device="cpu", resume=True)
    assert files_of(out) == finished  # metrics.json and all: evaluate and export still take the run
    run(tiny(synthetic, epochs=1), out_dir=tmp_path / "plain")
    plain = files_of(tmp_path / "plain")
    with pytest.raises(SandboxError, match=f"it has no {CHECKPOINT_FILE}"):
        train_run(load_spec(tiny(synthetic, epochs=1)), out_dir=tmp_path / "plain", device="cpu", resume=True)
    assert files_of(tmp_path / "plain") == plain


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda c: c.pop("optimizer"), f"{CHECKPOINT_FILE} lacks optimizer"),
        (lambda c: c["model"].update(weight=torch.zeros(3)), f"{CHECKPOINT_FILE} does not fit the network in its "
         "model state: unexpected weight"),
        (lambda c: c["model"].update({k: torch.zeros(2, 2) for k in list(c["model"])[:1]}), "is (2, 2) in the weights"),
        (lambda c: c.update(history="epochs"), f"{CHECKPOINT_FILE} has no list of epochs"),
    ],
)  # fmt: skip
def test_a_checkpoint_that_loads_but_does_not_fit_is_refused_before_any_file_changes(
    synthetic: Path, tmp_path: Path, damage: Any, message: str
) -> None:
    out = tmp_path / "run"
    raw = tiny(synthetic, epochs=1, checkpoint_every=1)
    run(raw, out_dir=out)
    checkpoint = torch.load(out / CHECKPOINT_FILE, weights_only=True)
    damage(checkpoint)
    torch.save(checkpoint, out / CHECKPOINT_FILE)
    before = files_of(out)
    with pytest.raises(SandboxError, match=f"^cannot resume {out}: .*{re.escape(message)}") as err:
        train_run(load_spec(raw), out_dir=out, device="cpu", resume=True)
    assert "\n" not in str(err.value) and files_of(out) == before


def test_init_from_a_run_and_frozen_modules_stay_as_loaded(synthetic: Path, tmp_path: Path) -> None:
    run(tiny(synthetic, epochs=1), out_dir=tmp_path / "first")
    start = load_file(str(tmp_path / "first" / WEIGHTS_FILE))
    said: list[str] = []
    raw = tiny(synthetic, epochs=1, init={"weights": str(tmp_path / "first")}, freeze=["stem"], ema=0.5)
    metrics = train_run(load_spec(raw), out_dir=tmp_path / "second", device="cpu", progress=False, say=said.append)
    assert metrics["init"]["loaded"] == metrics["init"]["total"] == len(start) and not metrics["init"]["reshaped"]
    assert said[0].startswith(f"init: loaded {len(start)} of the network's {len(start)} tensors")
    tuned = load_file(str(tmp_path / "second" / WEIGHTS_FILE))
    assert tuned.keys() == start.keys()  # frozen batch norms saved as plain ones
    frozen = [k for k in start if k.startswith("stem.") and "num_batches_tracked" not in k]
    assert frozen and all(torch.equal(tuned[k], start[k]) for k in frozen)
    assert any(not torch.equal(tuned[k], start[k]) for k in start if k.startswith("stages."))


def test_a_bad_freeze_path_is_refused_before_the_data_loads(tmp_path: Path) -> None:
    raw = tiny(tmp_path / "no-data-here", freeze=["stages.9"])
    with pytest.raises(SpecError) as err:
        run(raw)
    assert err.value.path == "train.freeze[0]"


def test_train_resume_on_the_command_line(synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, tiny(synthetic, epochs=2, checkpoint_every=1))
    out = tmp_path / "run"

    def stop(index: int, record: dict[str, Any]) -> None:
        raise Stop

    with pytest.raises(Stop):
        train_run(load_spec(spec), out_dir=out, device="cpu", progress=False, on_epoch=stop)
    base = ["--device", "cpu", "--threads", "1"]
    threads = torch.get_num_threads()
    try:
        assert main(["train", "--resume", str(out), *base]) == 0  # the run's own spec.yaml
        printed = capsys.readouterr().out
        assert f"resuming {out} after epoch 1 of 2" in printed and "epoch 2/2: train loss" in printed
        assert "epoch 1/2" not in printed and (out / METRICS_FILE).exists()
        assert main(["train", str(spec), "--resume", str(out), "--set", "train.lr=0.3", *base]) == 2
        err = capsys.readouterr().err
        assert "train.lr: 0.05 in the checkpoint, 0.3 now" in err and err.count("\n") == 1
        assert main(["train", "--resume", str(out), "--out", str(tmp_path / "elsewhere"), *base]) == 2
        assert capsys.readouterr().err.startswith("error: --out: a resumed run goes on in its own directory")
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_a_killed_process_resumes_to_the_uninterrupted_result(synthetic: Path, tmp_path: Path) -> None:
    """A real SIGKILL after the first checkpoint; the resumed run's metrics equal a straight run's."""
    spec = write_spec(tmp_path, with_dropout(tiny(synthetic, epochs=6, checkpoint_every=1, **EVERYTHING)))
    env = {**os.environ, "SANDBOX_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    base = [sys.executable, "-m", "sandbox", "train", str(spec), "--device", "cpu", "--threads", "1", "--seed", "1"]
    killed = subprocess.Popen([*base, "--out", str(tmp_path / "killed")], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (tmp_path / "killed" / CHECKPOINT_FILE).exists() and killed.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 2 minutes"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / METRICS_FILE).exists()  # killed mid-run, after a checkpoint
    resume = subprocess.Popen([*base, "--resume", str(tmp_path / "killed")], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    # the straight run meanwhile, the same command in this process (SANDBOX_CACHE is the same: private_cache)
    threads = torch.get_num_threads()
    try:
        assert main([*base[3:], "--out", str(tmp_path / "straight")]) == 0
    finally:
        torch.set_num_threads(threads)
    _, err = resume.communicate(timeout=300)
    assert resume.returncode == 0, err
    straight, resumed = (json.loads((tmp_path / d / METRICS_FILE).read_text()) for d in ("straight", "killed"))
    assert results(resumed) == results(straight) and 1 <= resumed["resumed_after_epoch"] < 6


def test_the_recipe_keys_are_searchable_like_any_other() -> None:
    from optuna.distributions import CategoricalDistribution

    from sandbox.spec.primitives import Primitive, lowest, primitives, sample

    def highest(primitive: Primitive) -> Any:
        dist = primitive.distribution
        return dist.choices[-1] if isinstance(dist, CategoricalDistribution) else dist.high

    space = tiny(ema={"choice": [None, 0.99]}, clip_grad={"float": [0.5, 5.0], "log": True},
                 augment={"mixup": {"float": [0.0, 0.4]}, "randaugment": {"choice": [False, {"ops": 1}]}})  # fmt: skip
    dimensions = {p.path for p in primitives(space)}
    assert {"train.ema", "train.clip_grad", "train.augment.mixup", "train.augment.randaugment"} <= dimensions
    low, high = (load_spec(sample(space, pick)).train for pick in (lowest, highest))
    assert (low.ema, low.clip_grad, low.augment.mixup, low.augment.randaugment) == (None, 0.5, 0.0, None)
    assert (high.ema, high.clip_grad, high.augment.mixup, high.augment.randaugment.ops) == (0.99, 5.0, 0.4, 1)
