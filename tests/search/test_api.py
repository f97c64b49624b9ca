"""`sandbox.search` and `sandbox.export`: a search and an export as calls that return objects."""

from __future__ import annotations

from pathlib import Path

import pytest

import sandbox
from sandbox.errors import SpecError
from tests.idx import write_fashion_mnist
from tests.search.spaces import tiny_space


def test_search_then_export_from_python(tmp_path: Path, write_yaml) -> None:
    data = write_fashion_mnist(tmp_path / "data", train=320, test=64)
    said: list[str] = []
    found = sandbox.search(
        write_yaml(tiny_space()),
        trials=2,
        workers=1,
        out=tmp_path / "run",
        data_dir=data,
        device="cpu",
        say=said.append,
    )
    assert not found.interrupted and found.best_trial is not None and found.best is not None
    assert found.best.path == tmp_path / "run" / "best" and found.best.val_accuracy == found.best_trial.values[0]
    assert found.leaderboard[0]["trial"] == found.best_trial.number and len(found.study.trials) >= 2
    assert said[0].startswith("study 'tiny'") and said[-1] == f"report: {tmp_path / 'run' / 'report.html'}"
    written = sandbox.export(found.best, "py", out=tmp_path / "net.py")
    assert written[0] == tmp_path / "net.py" and written[0].is_file()
    with pytest.raises(SpecError, match=r"^--format: unknown format 'onx'.*did you mean 'onnx'"):
        sandbox.export(found.best, "onx")


def test_a_bad_search_setting_is_a_spec_error_naming_the_key(tmp_path: Path, write_yaml) -> None:
    with pytest.raises(SpecError, match=r"^search\.trials: .*\(set by --set search\.trials=0\)"):
        sandbox.search(write_yaml(tiny_space()), out=tmp_path / "run", device="cpu", overrides={"search.trials": 0})
    with pytest.raises(SpecError, match=r"^trails: unknown search setting; .*did you mean 'trials'"):
        sandbox.search(write_yaml(tiny_space()), trails=2)
